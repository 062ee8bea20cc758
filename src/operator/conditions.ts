import type { Condition } from '../api/index.ts';

/** Condition bookkeeping with api-conventions semantics: lastTransitionTime moves only when status does. */

export function nowIso(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function setCondition(
  list: Condition[] | undefined,
  c: {
    type: string;
    status: Condition['status'];
    reason: string;
    message: string;
    observedGeneration?: number;
  },
  now = new Date(),
): Condition[] {
  const out = [...(list ?? [])];
  const i = out.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? out[i] : undefined;
  const next: Condition = {
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: c.message.slice(0, 32768),
    ...(c.observedGeneration !== undefined && { observedGeneration: c.observedGeneration }),
    lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : nowIso(now),
  };
  if (i >= 0) out[i] = next;
  else out.push(next);
  return out;
}

export function getCondition(list: Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}
