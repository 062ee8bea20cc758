import { describe, expect, it } from 'vitest';
import { RequestStatus } from '../../../src/sim/engine/request-table.ts';
import { WorkerState } from '../../../src/sim/planner/fleet.ts';
import { WorkloadBuilder } from '../../../src/sim/workload/workload.ts';
import { conversationSample, run } from '../../support/sim.ts';

/** Unique-prompt requests: `rate` per second over [from, to) seconds. */
function phases(list: { from: number; to: number; rate: number; isl: number; osl: number }[]) {
  const b = new WorkloadBuilder(64);
  for (const p of list) {
    for (let t = p.from * 1000; t < p.to * 1000; t += 1000 / p.rate) {
      const ids = Array.from({ length: Math.ceil(p.isl / 64) }, () => b.freshHash());
      b.add({ arrivalMs: t, inputLength: p.isl, outputLength: p.osl, hashIds: ids, denseHashIds: true });
    }
  }
  return b.build();
}

/** Heavy traffic for `busy` seconds at each of `starts`, nothing in between. */
const ramp = (starts: number[], busy: number) =>
  phases(starts.map((s) => ({ from: s, to: s + busy, rate: 40, isl: 4000, osl: 100 })));

const loadPlanner = {
  optimization_target: 'load',
  decode_scale_up_kv_rate: 30,
  decode_scale_down_kv_rate: 5,
  load_adjustment_interval_seconds: 5,
  max_endpoint: 4,
  max_gpu_budget: 8,
};

describe('planner in the simulation loop', () => {
  it('counts scaling events on a hand-made ramp: up to the maximum and back, once per cycle', () => {
    // A trickle at the end keeps the run going until the second cycle has scaled back down.
    const w = phases([
      ...[0, 400].map((from) => ({ from, to: from + 40, rate: 40, isl: 4000, osl: 100 })),
      { from: 700, to: 720, rate: 0.2, isl: 500, osl: 10 },
    ]);
    const { result, report } = run(w, { planner: loadPlanner });
    expect(report.completed_requests).toBe(report.num_requests);
    // Each cycle: 1 -> 2 -> 3 -> 4 on three consecutive ticks, then 4 -> 3 -> 2 -> 1 once the backlog is gone.
    expect(report.scaling_events).toMatchObject({ up: 6, down: 6, total: 12 });
    const ev = report.planner?.events ?? [];
    expect(ev.map((e) => `${e.direction}${e.from}>${e.to}`)).toEqual([
      ...['up1>2', 'up2>3', 'up3>4', 'down4>3', 'down3>2', 'down2>1'],
      ...['up1>2', 'up2>3', 'up3>4', 'down4>3', 'down3>2', 'down2>1'],
    ]);
    expect(ev.slice(0, 3).map((e) => e.t_s)).toEqual([5, 10, 15]);
    expect(ev[6].t_s).toBeGreaterThan(400);
    expect(ev[6].t_s).toBeLessThanOrEqual(405);
    // The event list, the counts and the workers' lifecycle agree.
    expect(report.planner?.workers_added).toBe(6);
    expect(report.planner?.workers_drained).toBe(6);
    const fleet = result.planner?.fleet;
    expect(fleet?.count('aggregated', WorkerState.Active)).toBe(1);
  });

  it('keeps replica bounds and the GPU budget at every instant, draining workers included', () => {
    const { result, report } = run(ramp([0, 150, 300], 60), {
      tensorParallelSize: 2,
      workers: 2,
      planner: { ...loadPlanner, min_endpoint: 2, max_endpoint: 10, max_gpu_budget: 7 },
      startupTimeS: 20,
    });
    expect(report.completed_requests).toBe(report.num_requests);
    const tl = report.replicas_over_time;
    if (!tl) throw new Error('no timeline');
    const row = tl.roles.aggregated;
    expect(Math.max(...tl.gpus_held)).toBe(6); // 3 workers x 2 GPUs: a 4th would exceed 7
    tl.t_s.forEach((_, i) => {
      expect(tl.gpus_held[i]).toBeLessThanOrEqual(7);
      expect(row.starting[i] + row.active[i]).toBeGreaterThanOrEqual(2);
      expect(row.starting[i] + row.active[i]).toBeLessThanOrEqual(3);
    });
    expect(report.scaling_events?.up).toBeGreaterThan(0);
    expect(result.planner?.fleet.heldGpus).toBeLessThanOrEqual(7);
  });

  it('a started worker serves nothing before its startup time has passed', () => {
    const startup = 45;
    const { result, report } = run(ramp([0], 120), { planner: loadPlanner, startupTimeS: startup });
    const workers = report.planner?.worker_lifecycle.filter((w) => w.requested_s > 0) ?? [];
    expect(workers.length).toBeGreaterThan(0);
    const c = result.records;
    const req = result.records;
    for (const w of workers) {
      if (w.ready_s === null) continue;
      expect(w.ready_s - (w.started_s as number)).toBeCloseTo(startup, 9);
      for (let r = 0; r < req.size; r++) {
        if (req.engine[r] !== w.worker) continue;
        expect(c.arrivalMs[r]).toBeGreaterThanOrEqual(w.ready_s * 1000);
        expect(c.firstAdmitMs[r]).toBeGreaterThanOrEqual(w.ready_s * 1000);
      }
    }
    // While a worker starts, no further decision is taken for its pool.
    const ev = report.planner?.events ?? [];
    for (let i = 1; i < ev.length; i++) {
      if (ev[i - 1].direction === 'up') expect(ev[i].t_s - ev[i - 1].t_s).toBeGreaterThanOrEqual(startup);
    }
    // Starting workers cost GPU-hours.
    expect(report.planner?.gpu_hours_by_state.starting).toBeGreaterThan(0);
  });

  it('draining loses no request: every request routed to a drained worker completes there', () => {
    // Four workers for steady, light traffic of long answers: the planner drains workers that are busy.
    const w = phases([{ from: 0, to: 120, rate: 2, isl: 4000, osl: 1000 }]);
    const { result, report } = run(w, {
      workers: 4,
      planner: { ...loadPlanner, decode_scale_up_kv_rate: 90, decode_scale_down_kv_rate: 20 },
      startupTimeS: 10,
    });
    expect(report.completed_requests).toBe(report.num_requests);
    expect(report.incomplete_requests).toBe(0);
    const drained = report.planner?.worker_lifecycle.filter((w) => w.drain_s !== null) ?? [];
    expect(drained.length).toBeGreaterThan(0);
    let finishedWhileDraining = 0;
    const c = result.records;
    for (const w of drained) {
      expect(w.removed_s).not.toBeNull();
      for (let r = 0; r < result.records.size; r++) {
        if (result.records.engine[r] !== w.worker) continue;
        expect(result.records.status[r]).toBe(RequestStatus.Done);
        // Nothing new was routed to it after the drain began.
        expect(c.arrivalMs[r]).toBeLessThanOrEqual((w.drain_s as number) * 1000);
        if (c.terminalMs[r] > (w.drain_s as number) * 1000) finishedWhileDraining++;
      }
    }
    expect(finishedWhileDraining).toBeGreaterThan(0);
    expect(report.planner?.gpu_hours_by_state.draining).toBeGreaterThan(0);
  });

  it('a step in load brings a scale-up within one interval, serving after one more startup time', () => {
    const step = 60;
    const w = phases([
      { from: 0, to: step, rate: 1, isl: 1000, osl: 50 },
      { from: step, to: step + 90, rate: 40, isl: 4000, osl: 100 },
    ]);
    for (const [name, planner] of [
      ['load', { ...loadPlanner, load_adjustment_interval_seconds: 10 }],
      [
        'sla',
        {
          optimization_target: 'sla',
          enable_load_scaling: true,
          enable_throughput_scaling: false,
          ttft_ms: 2000,
          itl_ms: 50,
          load_adjustment_interval_seconds: 10,
        },
      ],
    ] as const) {
      const { report } = run(w, { planner, startupTimeS: 30 });
      const first = (report.planner?.events ?? []).find((e) => e.direction === 'up');
      expect(first, name).toBeDefined();
      expect(first?.t_s, name).toBeGreaterThan(step);
      expect(first?.t_s, name).toBeLessThanOrEqual(step + 10);
      const added = report.planner?.worker_lifecycle.find((x) => x.requested_s === first?.t_s);
      expect(added?.ready_s, name).toBeLessThanOrEqual(step + 10 + 30);
    }
  });

  it('disaggregated: both pools scale, the budget holds, every request completes; runs are deterministic', () => {
    const cfg = {
      router: { mode: 'kv' },
      disaggregation: { prefill: { workers: 1 }, decode: { workers: 1 } },
      planner: {
        optimization_target: 'sla',
        enable_load_scaling: true,
        ttft_ms: 1000,
        itl_ms: 20,
        throughput_adjustment_interval_seconds: 60,
        load_adjustment_interval_seconds: 5,
        max_gpu_budget: 6,
      },
      startupTimeS: 5,
    };
    const w = conversationSample(600);
    const a = run(w, cfg);
    const b = run(w, cfg);
    expect(a.report.completed_requests).toBe(a.report.num_requests);
    expect(a.report.scaling_events?.by_role.prefill.up).toBeGreaterThan(0);
    expect(Math.max(...(a.report.replicas_over_time?.gpus_held ?? [99]))).toBeLessThanOrEqual(6);
    expect(b.report.planner?.events).toEqual(a.report.planner?.events);
    expect(b.report.ttft_ms).toEqual(a.report.ttft_ms);
    expect(a.report.planner?.perf_model.prefill).not.toBeNull();
  });

  it('without a planner GPU-hours are GPUs x duration; with one, the integral of GPUs held', () => {
    const w = ramp([0], 30);
    const fixed = run(w, { workers: 3 }).report;
    expect(fixed.gpu_hours).toBeCloseTo((3 * fixed.simulated_duration_s) / 3600, 12);
    const planned = run(w, { workers: 1, planner: loadPlanner }).report;
    const p = planned.planner;
    if (!p) throw new Error('no planner report');
    const sum = p.gpu_hours_by_state.starting + p.gpu_hours_by_state.active + p.gpu_hours_by_state.draining;
    expect(planned.gpu_hours).toBeCloseTo(sum, 12);
    expect(planned.gpu_hours).toBeCloseTo((p.mean_gpus_held * planned.simulated_duration_s) / 3600, 9);
    expect(planned.gpu_hours).toBeLessThan((p.peak_gpus_held * planned.simulated_duration_s) / 3600);
  });
});
