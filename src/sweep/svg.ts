/**
 * SVG chart primitives shared by the sweep's HTML report and the charts of the docs (bench/): escaping, round
 * axis ticks (linear, and 1-2-5 or decades on log axes), tick labels, and which labels fit on an axis without
 * running into each other. Hand-written rather than a charting library: the output must be a few kilobytes of
 * static, deterministic SVG with no scripts, and these few functions are all the charts need.
 */

/** Escapes text for SVG/HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate, to 0.1 px. */
export function px(v: number): string {
  return v.toFixed(1);
}

/** Round ticks over [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten, at most `target` of them. */
export function linearTicks(lo: number, hi: number, target = 6): number[] {
  const span = hi - lo || 1;
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => span / s <= target) ?? mag * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Ticks over [lo, hi] (both > 0) on a log axis: 1, 2 and 5 per decade over up to three decades, decades
 * only beyond (a 1-2-5 tick per third of a decade leaves no room for labels on wide ranges), unless
 * `mantissas` says which to use.
 */
export function logTicks(lo: number, hi: number, mantissas?: readonly number[]): number[] {
  const first = Math.floor(Math.log10(lo));
  const last = Math.ceil(Math.log10(hi));
  mantissas ??= last - first > 3 ? [1] : [1, 2, 5];
  const out: number[] = [];
  for (let e = first; e <= last; e++) {
    for (const k of mantissas) {
      const v = k * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(Number(v.toPrecision(12)));
    }
  }
  return out.length >= 2 ? out : [lo, hi];
}

/** A short tick label: 12k, 1.5k, 500, 2.5, 0.05. */
export function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1000).toPrecision(3))}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return Number(v.toPrecision(3)).toString();
  return Number(v.toPrecision(2)).toString();
}

/**
 * Which ticks of a horizontal axis get a label: left to right, a label is drawn only when it clears the
 * previous drawn one by `gapPx` (label widths estimated from `charPx` per character), so labels never run
 * into each other ("5001000"). The first tick always gets its label.
 */
export function labelledTicks(
  ticks: readonly number[],
  at: (t: number) => number,
  label: (t: number) => string = tickLabel,
  charPx = 6.5,
  gapPx = 8,
): boolean[] {
  let lastRight = Number.NEGATIVE_INFINITY;
  return ticks.map((t) => {
    const half = (label(t).length * charPx) / 2;
    const x = at(t);
    if (x - half < lastRight + gapPx) return false;
    lastRight = x + half;
    return true;
  });
}
