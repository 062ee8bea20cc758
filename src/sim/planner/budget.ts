/**
 * Keeps a proposed replica count per role inside the replica bounds and the GPU budget.
 *
 * Every role stays between its current and proposed count, so clamping never reverses a decision. Over
 * `maxGpus`, growing roles give workers back (the largest increase first, which shares the room roughly in
 * proportion, as the reference's proportional shrink does) until the total fits; it always fits by the time
 * they are back at their current counts, because the current allocation does. Under `minGpus` (the floor is a
 * scale-down guard, not a reason to grow), shrinking roles are held. Counts are of planned workers (starting
 * and active); the simulation additionally keeps GPUs held by draining workers under the ceiling by delaying
 * new workers' start until GPUs are free.
 */
export function constrainReplicas(
  current: readonly number[],
  proposed: readonly number[],
  gpus: readonly number[],
  bounds: readonly { min: number; max: number }[],
  minGpus: number,
  maxGpus: number,
): number[] {
  const total = (c: readonly number[]) => c.reduce((s, v, i) => s + v * gpus[i], 0);
  const out = proposed.map((p, i) => Math.min(bounds[i].max, Math.max(bounds[i].min, p)));
  if (maxGpus >= 0) {
    // Over the ceiling: take workers back from the growing roles, the one that grew most first, until it
    // fits; it always does by the time every role is back at its current count.
    while (total(out) > maxGpus) {
      let pick = -1;
      for (let i = 0; i < out.length; i++) {
        if (out[i] > current[i] && (pick < 0 || out[i] - current[i] > out[pick] - current[pick])) pick = i;
      }
      if (pick < 0) break;
      out[pick]--;
    }
  }
  // Both bounds set: integer steps of different GPU widths cannot always land exactly, so the floor gives
  // one worker's worth of slack.
  const slack = minGpus >= 0 && maxGpus >= 0 ? Math.max(...gpus) : 0;
  if (minGpus >= 0 && total(out) < minGpus - slack && total(out) < total(current)) {
    return out.map((v, i) => Math.max(v, current[i]));
  }
  return out;
}
