import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { emptySnapshot, type ForwardPassSnapshot } from '../../../src/sim/engine/pass-metrics.ts';
import { FpmRegression, type PassWork, type WorkerRole } from '../../../src/sim/planner/fpm-regression.ts';
import { EnginePerfModel } from '../../../src/sim/planner/perf-model.ts';
import { FIXTURES } from '../../support/sim.ts';

/**
 * The SLA planner's performance model against the reference's (ai-dynamo 1.6.1 / aisimulate-core 0.13.0, no
 * AI Configurator data): test/fixtures/reference/planner/perf-model.json, recorded by
 *
 *   python hack/reference/record-planner-perf-model.py > test/fixtures/reference/planner/perf-model.json
 *
 * (see that script for what each part exercises). Every estimate must agree to 1e-9 relative.
 */
type Pass = [number, number, number, number, number];
interface EstimatorCase {
  role: WorkerRole;
  tunes: [...Pass, number][];
  queries: Pass[];
  predictions: (number | null)[][];
}
interface PlannerCase {
  role: WorkerRole;
  bootstrap: [...Pass, number][];
  ticks: { worker: number; pass: [...Pass, number]; queued: [number, number, number, number] }[][];
  results: {
    avg_isl: number;
    avg_decode_length: number;
    ready: boolean;
    ttft: (number | null)[][];
    itl: (number | null)[][];
    capacity: ([number, number | null, number | null, number | null, boolean] | null)[];
  }[];
}
const data = JSON.parse(readFileSync(`${FIXTURES}reference/planner/perf-model.json`, 'utf8')) as {
  caps: { max_num_batched_tokens: number; max_num_seqs: number; max_kv_tokens: number };
  prefill_options: {
    kv_hit_rate?: number;
    queue_scale?: number;
    decode_scale?: number;
    include_queued_decode?: boolean;
  }[];
  decode_options: {
    include_queued_decode?: boolean;
    decode_scale?: number;
    include_prefill_as_kv?: boolean;
  }[];
  capacity_requests: { isl: number; osl: number; kv_hit_rate?: number }[];
  estimator: EstimatorCase[];
  planner: PlannerCase[];
};

const work = (p: Pass): PassWork => ({
  sumPrefillTokens: p[0],
  sumPrefillKvTokens: p[1],
  numPrefillRequests: p[2],
  numDecodeRequests: p[3],
  sumDecodeKvTokens: p[4],
});

const snapshot = (engine: number, p: [...Pass, number], q = [0, 0, 0, 0]): ForwardPassSnapshot => ({
  ...emptySnapshot(engine),
  ...work(p.slice(0, 5) as Pass),
  wallTimeS: p[5],
  numQueuedPrefill: q[0],
  sumQueuedPrefillTokens: q[1],
  numQueuedDecode: q[2],
  sumQueuedDecodeKvTokens: q[3],
});

function close(got: number | null | undefined, want: number | null, what: string): void {
  if (want === null) {
    expect(got ?? null, what).toBeNull();
    return;
  }
  expect(got, what).not.toBeNull();
  expect(
    Math.abs((got as number) - want) / Math.max(Math.abs(want), 1e-12),
    `${what}: ${got} vs ${want}`,
  ).toBeLessThan(1e-9);
}

const settings = { maxObservations: 64, minObservations: 5, bucketCount: 16 };

describe('forward-pass regression (AISimulate fpm_regression) against the reference', () => {
  for (const c of data.estimator) {
    it(`${c.role}: ${c.tunes.length} passes, estimates of ${c.queries.length} query passes after each`, () => {
      const m = new FpmRegression(c.role, settings);
      c.tunes.forEach((t, i) => {
        m.tune(work(t.slice(0, 5) as Pass), t[5]);
        c.queries.forEach((q, j) => {
          close(m.estimateMs(work(q)), c.predictions[i][j], `pass ${i} query ${j}`);
        });
      });
    });
  }
});

describe("the SLA planner's model of a worker (PlannerEnginePerfModel) against the reference", () => {
  const caps = {
    maxNumBatchedTokens: data.caps.max_num_batched_tokens,
    maxNumSeqs: data.caps.max_num_seqs,
    maxKvTokens: data.caps.max_kv_tokens,
    contextLength: data.caps.max_kv_tokens,
  };
  data.planner.forEach((c, k) => {
    it(`${c.role} #${k}: ${c.bootstrap.length} bootstrap passes, ${c.ticks.length} ticks of 4 workers`, () => {
      const m = new EnginePerfModel(c.role, { maxSamples: 64, minObservations: 5, bucketCount: 16 }, caps);
      if (c.bootstrap.length > 0) m.bootstrap(c.bootstrap.map((b) => snapshot(0, b)));
      c.ticks.forEach((rows, i) => {
        const fpms = rows.map((r) => snapshot(r.worker, r.pass, r.queued));
        m.observe(fpms);
        const want = c.results[i];
        close(m.isl, want.avg_isl, `tick ${i} avg isl`);
        close(m.decodeLength, want.avg_decode_length, `tick ${i} avg decode length`);
        expect(m.hasSufficientData(), `tick ${i} ready`).toBe(want.ready);
        fpms.forEach((f, w) => {
          data.prefill_options.forEach((o, j) => {
            close(
              m.queuedPrefillTime(f, {
                kvHit: o.kv_hit_rate,
                queueScale: o.queue_scale,
                decodeScale: o.decode_scale,
                includeQueuedDecode: o.include_queued_decode,
              }),
              want.ttft[w][j],
              `tick ${i} worker ${w} TTFT option ${j}`,
            );
          });
          data.decode_options.forEach((o, j) => {
            close(
              m.scheduledDecodeItl(f, {
                decodeScale: o.decode_scale,
                includeQueuedDecode: o.include_queued_decode ?? true,
                includeQueuedPrefillAsKv: o.include_prefill_as_kv,
              }),
              want.itl[w][j],
              `tick ${i} worker ${w} ITL option ${j}`,
            );
          });
        });
        data.capacity_requests.forEach((r, j) => {
          const got = m.capacity({
            isl: r.isl,
            osl: r.osl,
            kvHit: r.kv_hit_rate,
            ...(c.role !== 'decode' ? { ttftSlaMs: 2000 } : {}),
            ...(c.role !== 'prefill' ? { itlSlaMs: 50 } : {}),
          });
          const e = want.capacity[j];
          if (e === null) {
            expect(got, `tick ${i} capacity ${j}`).toBeNull();
            return;
          }
          close(got?.rps, e[0], `tick ${i} capacity ${j} rps`);
          close(
            got?.ttftS === null || got === null ? null : got.ttftS * 1000,
            e[1],
            `tick ${i} capacity ${j} ttft`,
          );
          close(
            got?.itlS === null || got === null ? null : got.itlS * 1000,
            e[2],
            `tick ${i} capacity ${j} itl`,
          );
          close(
            got?.e2eS === null || got === null ? null : got.e2eS * 1000,
            e[3],
            `tick ${i} capacity ${j} e2e`,
          );
          expect(got?.eligible, `tick ${i} capacity ${j} eligible`).toBe(e[4]);
        });
      });
    });
  });
});
