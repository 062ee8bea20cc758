import { Rng } from '../../sim/random.ts';
import { type Workload, WorkloadBuilder } from '../../sim/workload/workload.ts';
import { LARGEST_CATALOGUED_CONTEXT } from '../trace/index.ts';
import type { Distribution } from './distribution.ts';
import type { WorkloadProfile } from './profile.ts';

/**
 * A replayable trace from a profile, deterministic for a seed, for when only a profile exists (Prometheus):
 *
 * - arrivals follow the rate curve bin by bin (each bin's count, spread uniformly inside the bin), so bursts
 *   at the curve's resolution survive and nothing finer is invented;
 * - prompt and output lengths are drawn independently from their histograms: the bucket by its share, the
 *   value inside the bucket log-uniformly, bent by one exponent (shared by all buckets) so the mean matches
 *   the profile's mean while every value stays in its bucket (bucket shares, and so the histogram, are exact
 *   up to sampling);
 * - prefix sharing: each request belongs to one of G prefix groups (about 16 requests per group) and its
 *   first `round(f x blocks)` blocks are its group's; f is solved so that the share of prompt blocks seen
 *   earlier (what an unbounded cache could hit) equals the profile's prefix reuse.
 *
 * Independent draws lose the per-request pairing of prompt and output lengths, and the groups are a guess at
 * the prefix structure: a recorded trace is preferred whenever one exists (docs/telemetry.md).
 */

export interface SynthesisOptions {
  seed?: number;
  /** Tokens per hash id of the synthesised prompts (the granularity of sharing). Default 64. */
  blockSize?: number;
  /** Refuse profiles asking for more requests than this (default 5,000,000). */
  maxRequests?: number;
}

export interface SynthesisResult {
  /** The trace (its first arrival at 0, as every workload's). */
  workload: Workload;
  /** Time of the first arrival from the start of the profile's window (ms): bins line up with it. */
  startOffsetMs: number;
  /** What the synthesised trace achieved, to compare with the profile. */
  achieved: {
    requests: number;
    inputMean: number;
    outputMean: number;
    /** Share of prompt blocks seen earlier in the trace (null when the profile has no prefix information). */
    prefixReuse: number | null;
    sharedFraction: number;
    prefixGroups: number;
  };
}

export class SynthesisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SynthesisError';
  }
}

/** Token range of bucket i as integers (lo, hi]: the first bucket from a quarter of its bound. */
function bucketRange(d: Distribution, i: number): { lo: number; hi: number } {
  const last = d.bounds.length > 0 ? d.bounds[d.bounds.length - 1] : 1;
  const hi =
    i < d.bounds.length ? d.bounds[i] : Math.min(LARGEST_CATALOGUED_CONTEXT, Math.max(last * 2, last + 1));
  const lo = i === 0 ? Math.max(0, Math.floor(hi / 4)) : i <= d.bounds.length ? d.bounds[i - 1] : last;
  return { lo: Math.max(0, Math.floor(lo)), hi: Math.max(1, Math.floor(hi)) };
}

/** Draws `n` lengths (>= 1) from a histogram, matching its mean as far as the buckets allow. */
export function drawLengths(d: Distribution, n: number, rng: Rng): Int32Array {
  const out = new Int32Array(n);
  if (n === 0) return out;
  const total = d.counts.reduce((a, b) => a + b, 0);
  const ranges = d.counts.map((_, i) => bucketRange(d, i));
  const cum: number[] = [];
  let acc = 0;
  for (const c of d.counts) {
    acc += c;
    cum.push(acc);
  }
  const bucket = new Int32Array(n);
  const u = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const r = rng.next() * (total > 0 ? total : 1);
    let b = 0;
    while (b < cum.length - 1 && (cum[b] <= r || d.counts[b] === 0)) b++;
    // A histogram without observations: use its mean (or 1).
    bucket[k] = total > 0 ? b : -1;
    u[k] = rng.next();
  }
  const value = (k: number, a: number) => {
    const b = bucket[k];
    if (b < 0) return Math.max(1, Math.round(d.mean));
    const { lo, hi } = ranges[b];
    const from = Math.max(1, lo + 1);
    if (hi <= from) return Math.max(1, hi);
    const x = from * (hi / from) ** (u[k] ** a);
    return Math.min(hi, Math.max(from, Math.round(x)));
  };
  const meanAt = (a: number) => {
    let s = 0;
    for (let k = 0; k < n; k++) s += value(k, a);
    return s / n;
  };
  // Larger exponents push values towards their bucket's lower end: the mean falls as a grows.
  let lo = 1 / 8;
  let hi = 8;
  let a = 1;
  if (d.mean > 0 && total > 0) {
    if (meanAt(lo) <= d.mean) a = lo;
    else if (meanAt(hi) >= d.mean) a = hi;
    else {
      for (let it = 0; it < 30; it++) {
        a = Math.sqrt(lo * hi);
        if (meanAt(a) > d.mean) lo = a;
        else hi = a;
      }
    }
  }
  for (let k = 0; k < n; k++) out[k] = value(k, a);
  return out;
}

/** Arrival times (ms from the window's start) following the rate curve, sorted. */
function drawArrivals(p: WorkloadProfile, rng: Rng, max: number): Float64Array {
  const stepMs = p.rate.step_s * 1000;
  const perBin = p.rate.counts.map((c) => {
    const whole = Math.floor(c);
    return whole + (rng.next() < c - whole ? 1 : 0);
  });
  const n = perBin.reduce((a, b) => a + b, 0);
  if (n > max)
    throw new SynthesisError(
      `the profile asks for ${n} requests, more than the ${max} a synthesised trace may hold`,
    );
  const out = new Float64Array(n);
  let k = 0;
  perBin.forEach((c, i) => {
    const start = k;
    for (let j = 0; j < c; j++) out[k++] = (i + rng.next()) * stepMs;
    out.subarray(start, k).sort();
  });
  return out;
}

/** Share of blocks seen earlier when request i shares its first shared[i] blocks with group[i]'s prefix. */
function reuseOf(blocks: Int32Array, group: Int32Array, groups: number, f: number): number {
  const seenLen = new Int32Array(groups);
  let reused = 0;
  let total = 0;
  for (let i = 0; i < blocks.length; i++) {
    const s = Math.min(blocks[i], Math.round(f * blocks[i]));
    const g = group[i];
    reused += Math.min(s, seenLen[g]);
    if (s > seenLen[g]) seenLen[g] = s;
    total += blocks[i];
  }
  return total > 0 ? reused / total : 0;
}

export function synthesize(p: WorkloadProfile, opts: SynthesisOptions = {}): SynthesisResult {
  const rng = new Rng(opts.seed ?? 1);
  const bs = opts.blockSize ?? 64;
  const arrivals = drawArrivals(p, rng, opts.maxRequests ?? 5_000_000);
  const n = arrivals.length;
  const input = drawLengths(p.input_tokens, n, rng);
  const output = drawLengths(p.output_tokens, n, rng);
  const blocks = new Int32Array(n);
  for (let i = 0; i < n; i++) blocks[i] = Math.ceil(input[i] / bs);

  const target = p.prefix_reuse.share;
  let groups = Math.max(1, Math.min(100_000, Math.ceil(n / 16)));
  const group = new Int32Array(n);
  const assign = () => {
    for (let i = 0; i < n; i++) group[i] = rng.int(groups);
  };
  assign();
  let f = 0;
  if (target !== null && target > 0 && n > 0) {
    // Fewer, larger groups reach higher reuse (fewer first occurrences); shrink until the target is reachable.
    while (reuseOf(blocks, group, groups, 1) < target && groups > 1) {
      groups = Math.max(1, Math.floor(groups / 2));
      assign();
    }
    let lo = 0;
    let hi = 1;
    for (let it = 0; it < 40; it++) {
      f = (lo + hi) / 2;
      if (reuseOf(blocks, group, groups, f) < target) lo = f;
      else hi = f;
    }
    f = hi;
  }

  const b = new WorkloadBuilder(bs);
  const prefixes: number[][] = Array.from({ length: groups }, () => []);
  let inSum = 0;
  let outSum = 0;
  for (let i = 0; i < n; i++) {
    const shared = Math.min(blocks[i], Math.round(f * blocks[i]));
    const own = prefixes[group[i]];
    while (own.length < shared) own.push(b.freshHash());
    const ids = new Array<number>(blocks[i]);
    for (let k = 0; k < blocks[i]; k++) ids[k] = k < shared ? own[k] : b.freshHash();
    b.add({
      arrivalMs: arrivals[i],
      inputLength: input[i],
      outputLength: output[i],
      hashIds: ids,
      denseHashIds: true,
    });
    inSum += input[i];
    outSum += output[i];
  }
  return {
    workload: b.build(),
    startOffsetMs: n > 0 ? arrivals[0] : 0,
    achieved: {
      requests: n,
      inputMean: n > 0 ? inSum / n : 0,
      outputMean: n > 0 ? outSum / n : 0,
      prefixReuse: target === null ? null : reuseOf(blocks, group, groups, f),
      sharedFraction: f,
      prefixGroups: groups,
    },
  };
}
