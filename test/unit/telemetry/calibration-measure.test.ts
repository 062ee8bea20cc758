import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toSimulationOptions } from '../../../src/config/run.ts';
import { SimulationConfigSchema } from '../../../src/config/schema.ts';
import { createLiveSimulation } from '../../../src/sim/live.ts';
import { selectRequests } from '../../../src/sim/workload/slice.ts';
import type { Workload } from '../../../src/sim/workload/workload.ts';
import {
  CALIBRATION_METRICS,
  calibrate,
  observedBasis,
  observedMetrics,
} from '../../../src/telemetry/calibration/calibrate.ts';
import { withWarmup } from '../../../src/telemetry/calibration/warmup.ts';
import { distributionFromBuckets } from '../../../src/telemetry/profile/distribution.ts';
import { profileFromRecorded, readRecordedWindow } from '../../../src/telemetry/profile/from-trace.ts';
import type { WorkloadProfile } from '../../../src/telemetry/profile/profile.ts';
import { DEFAULT_BUCKETS, dynamoLogBuckets } from '../../../src/twin/dynamo-metrics.ts';
import { liveOptions } from '../../../src/twin/fleet.ts';
import { requestEndRecord } from '../../../src/twin/request-trace.ts';

/**
 * Calibration against a deployment that is the simulator itself (the twin's core: the live simulation, its
 * events recorded as the twin's frontend records them) must score zero once both sides measure the same
 * statistic over the same population. Before measure.ts they did not: the Prometheus side read percentiles
 * through Dynamo's buckets (histogram_quantile) and counted what happened inside the window, the replay
 * took exact percentiles of the requests that arrived in it; the request-trace side had each request's mean
 * gap, the replay pooled every gap.
 */

const SAMPLE = new URL('../../fixtures/traces/conversation-sample.jsonl', import.meta.url).pathname;
const config = SimulationConfigSchema.parse({
  workers: 4,
  engine: { blockSize: 64 },
  workload: { trace: 'x' },
});

interface Served {
  arrival: number;
  first: number;
  last: number;
  end: number;
  tokens: number;
  row: number;
}

/** The deployment: the live simulation serving `w`'s rows up to `untilMs`, every event kept. */
function serve(w: Workload, untilMs: number) {
  const sim = createLiveSimulation(liveOptions(toSimulationOptions(config), w.traceBlockSize));
  const byId = new Map<number, Served>();
  const done: Served[] = [];
  const gaps: [number, number][] = [];
  const tokens: number[] = [];
  sim.setObserver({
    onFirstToken(id, t) {
      (byId.get(id) as Served).first = t;
    },
    onToken(id, index, t) {
      const r = byId.get(id) as Served;
      if (index > 1) gaps.push([t, t - r.last]);
      tokens.push(t);
      r.last = t;
      r.tokens = index;
    },
    onEnded(id, t) {
      const r = byId.get(id) as Served;
      r.end = t;
      done.push(r);
    },
  });
  for (let i = 0; i < w.size; i++) {
    const at = w.arrivalMs[i];
    if (!(at <= untilMs)) continue;
    const hashIds = w.hashIds.subarray(w.hashOffsets[i], w.hashOffsets[i + 1]);
    const id = sim.submit({
      inputLength: w.inputLength[i],
      outputLength: w.outputLength[i],
      hashIds,
      atMs: at,
    });
    byId.set(id, { arrival: at, first: Number.NaN, last: Number.NaN, end: Number.NaN, tokens: 0, row: i });
  }
  sim.advanceTo(untilMs + 600_000);
  expect(done.length).toBe(byId.size);
  return { done, gaps, tokens };
}

/** Observations in seconds through one of Dynamo's frontend histograms, read back as the profile reads them. */
function dynamoHistogram(valuesMs: number[], spec: { min: number; max: number; count: number }) {
  const cumulative = [...dynamoLogBuckets(spec.min, spec.max, spec.count), Number.POSITIVE_INFINITY].map(
    (le) => ({
      le,
      count: 0,
    }),
  );
  let sum = 0;
  for (const v of valuesMs) {
    sum += v / 1000;
    for (const b of cumulative) if (v / 1000 <= b.le) b.count++;
  }
  return distributionFromBuckets(
    cumulative.map((b) => ({ le: b.le * 1000, count: b.count })),
    sum * 1000,
  );
}

async function sample(untilMs: number): Promise<Workload> {
  const all = (await readRecordedWindow(SAMPLE, {})).workload;
  const ids: number[] = [];
  for (let i = 0; i < all.size; i++) if (all.arrivalMs[i] <= untilMs) ids.push(i);
  return selectRequests(all, ids);
}

const worst = (errors: Partial<Record<string, number>>) =>
  Math.max(...Object.values(errors).map((e) => Math.abs(e as number)));

describe('calibration measures the replay as the source measured the deployment', () => {
  it('Prometheus: events inside the window through the same buckets; against the simulator, every error ~0', async () => {
    const from = 20_000;
    const to = 50_000;
    const w = await sample(to + 30_000);
    // The deployment runs on after the window: what it observed inside the window cannot depend on that.
    const { done, gaps, tokens } = serve(w, to + 30_000);
    const inside = (t: number) => t > from && t <= to;
    let queuedMs = 0;
    for (const r of done) queuedMs += Math.max(0, Math.min(r.first, to) - Math.max(r.arrival, from));
    const base = profileFromRecorded(await readRecordedWindow(SAMPLE, { lookbackMs: 30_000 }), { name: 'x' });
    const profile: WorkloadProfile = {
      ...base,
      source: { kind: 'prometheus', name: 'twin' },
      observed: {
        ttft_ms: dynamoHistogram(
          done.filter((r) => inside(r.first)).map((r) => r.first - r.arrival),
          DEFAULT_BUCKETS.TTFT,
        ),
        itl_ms: dynamoHistogram(
          gaps.filter(([t]) => inside(t)).map(([, g]) => g),
          DEFAULT_BUCKETS.ITL,
        ),
        e2e_ms: dynamoHistogram(
          done.filter((r) => inside(r.end)).map((r) => r.end - r.arrival),
          DEFAULT_BUCKETS.REQUEST_DURATION,
        ),
        output_tokens_per_s: tokens.filter(inside).length / ((to - from) / 1000),
        queued_mean: queuedMs / (to - from),
      },
    };
    // Fewer than 100 requests in the window: the operator compares no TTFT or E2E tail (MIN_TAIL_SAMPLES), ITL's
    // token gaps are enough for every percentile. The measurement itself is checked on every metric.
    expect(profile.observed?.ttft_ms?.count).toBeLessThan(100);
    expect(Object.keys(observedMetrics(profile)).sort()).toEqual(
      CALIBRATION_METRICS.filter((k) => !['ttft_p90', 'ttft_p99', 'e2e_p90'].includes(k)).sort(),
    );
    const observed = observedMetrics(profile, 0);
    expect(Object.keys(observed).sort()).toEqual([...CALIBRATION_METRICS].sort());
    // The replay: the deployment's traffic up to the window's end, measured from its start.
    const replay = await sample(to);
    const o = { workload: replay, config, observed, windowS: 30, measureFromMs: from, fit: false };
    const like = calibrate({ ...o, basis: observedBasis(profile) });
    expect(observedBasis(profile).kind).toBe('histograms');
    for (const k of Object.keys(observed) as (keyof typeof observed)[])
      expect(Math.abs(like.errors[k] as number), k).toBeLessThan(0.005);
    // The report's own statistics (exact percentiles of the window's arrivals, pooled gaps) are not these.
    const unlike = calibrate(o);
    expect(worst(unlike.errors)).toBeGreaterThan(0.1);
  });

  it('request traces: per-request mean gaps over the recorded requests; against the simulator, every error ~0', async () => {
    const w = await sample(40_000);
    // Records are written as requests end and stamped to the millisecond: requests received in the same
    // millisecond would replay in the order they ended, not the order they were routed (a round-robin router
    // then deals them to other workers). Distinct arrival times keep this test about the statistics.
    for (let i = 0; i < w.size; i++) w.arrivalMs[i] += i;
    const { done } = serve(w, 40_000 + w.size);
    const epoch = 1_700_000_000_000;
    // Written as the twin writes DYN_REQUEST_TRACE records: one per request as it ends.
    const lines = done
      .sort((a, b) => a.end - b.end)
      .map((r) =>
        JSON.stringify(
          requestEndRecord({
            requestId: `r${r.row}`,
            model: 'm',
            inputTokens: w.inputLength[r.row],
            outputTokens: r.tokens,
            receivedUnixMs: epoch + r.arrival,
            ttftMs: r.first - r.arrival,
            totalTimeMs: r.end - r.arrival,
            avgItlMs: r.tokens > 1 ? (r.last - r.first) / (r.tokens - 1) : undefined,
            traceBlockSize: w.traceBlockSize,
            blockIds: w.hashIds.subarray(w.hashOffsets[r.row], w.hashOffsets[r.row + 1]),
          }),
        ),
      );
    const dir = mkdtempSync(join(tmpdir(), 'servetune-calib-'));
    try {
      const path = join(dir, 'dynamo-request-trace.jsonl');
      writeFileSync(path, `${lines.join('\n')}\n`);
      const rec = await readRecordedWindow(path, {});
      const profile = profileFromRecorded(rec, { name: 'x', kind: 'request-trace' });
      const observed = observedMetrics(profile);
      expect(Object.keys(observed)).toContain('itl_p50');
      const o = { workload: rec.workload, config, observed, windowS: 40, fit: false };
      const like = calibrate({ ...o, basis: observedBasis(profile) });
      expect(observedBasis(profile).kind).toBe('requests');
      for (const k of Object.keys(observed))
        expect(Math.abs(like.errors[k as keyof typeof like.errors] as number), k).toBeLessThan(0.01);
      // Pooled gaps are a typical decode step, not a typical request's mean gap.
      const unlike = calibrate(o);
      expect(unlike.errors.itl_p50 as number).toBeLessThan(-0.05);

      // The last 20 s as the window, read with everything recorded before it as its warm-up: the window, its
      // profile and its measurements are those read without the warm-up, and the replay after the recorded
      // warm-up reaches the window in the state the deployment was in (every error ~0); after the window's
      // own first part replayed as a warm-up (all a source without earlier records allows) it does not.
      const at = { lookbackMs: 20_000, endMs: epoch + 40_000 + w.size };
      const plain = await readRecordedWindow(path, at);
      const warm = await readRecordedWindow(path, { ...at, warmupMs: 30_000 });
      expect(plain.warmup).toBeUndefined();
      expect(Array.from(warm.workload.arrivalMs)).toEqual(Array.from(plain.workload.arrivalMs));
      expect(Array.from(warm.workload.outputLength)).toEqual(Array.from(plain.workload.outputLength));
      expect(warm.observed).toEqual(plain.observed);
      expect(warm.warmup?.workload.size).toBe(w.size);
      const windowProfile = profileFromRecorded(warm, { name: 'x', kind: 'request-trace' });
      const measured = {
        config,
        observed: observedMetrics(windowProfile),
        windowS: 20,
        fit: false,
        basis: observedBasis(windowProfile),
      };
      const recorded = calibrate({
        ...measured,
        ...(warm.warmup as { workload: Workload; measureFromMs: number }),
      });
      for (const k of Object.keys(measured.observed))
        expect(Math.abs(recorded.errors[k as keyof typeof recorded.errors] as number), k).toBeLessThan(0.01);
      const own = withWarmup(plain.workload, { spanMs: 20_000, maxRows: 100_000 });
      const self = calibrate({ ...measured, workload: own.workload, measureFromMs: own.measureFromMs });
      expect(worst(self.errors)).toBeGreaterThan(0.05);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
