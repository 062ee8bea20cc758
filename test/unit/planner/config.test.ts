import { describe, expect, it } from 'vitest';
import {
  checkPlannerAgainstCluster,
  PlannerConfigSchema,
  replicaBounds,
} from '../../../src/sim/planner/config.ts';

const parse = (o: object) => PlannerConfigSchema.parse(o);
const issue = (o: object) => {
  const r = PlannerConfigSchema.safeParse(o);
  if (r.success) throw new Error('expected a validation error');
  return { path: r.error.issues[0].path.join('.'), message: r.error.issues[0].message };
};

describe('planner configuration (reference field names and defaults)', () => {
  it('fills the reference defaults', () => {
    const c = parse({});
    expect(c.optimization_target).toBe('throughput');
    expect(c.ttft_ms).toBe(500);
    expect(c.itl_ms).toBe(50);
    expect(c.throughput_adjustment_interval_seconds).toBe(180);
    expect(c.load_adjustment_interval_seconds).toBe(5);
    expect(c.max_gpu_budget).toBe(8);
    expect(c.min_endpoint).toBe(1);
    expect(c.load_predictor).toBe('arima');
    expect(c.max_num_fpm_samples).toBe(64);
    expect(c.fpm_sample_bucket_size).toBe(16);
    expect(c.load_scaling_down_sensitivity).toBe(80);
    // Every target but sla scales on load only.
    expect(c.enable_load_scaling).toBe(true);
    expect(c.enable_throughput_scaling).toBe(false);
  });

  it('sla keeps the reference scaling-mode defaults and accepts the aliases', () => {
    const c = parse({ optimization_target: 'sla', ttft: 800, itl: 40, load_adjustment_interval: 10 });
    expect(c.enable_throughput_scaling).toBe(true);
    expect(c.enable_load_scaling).toBe(false);
    expect(c.ttft_ms).toBe(800);
    expect(c.itl_ms).toBe(40);
    expect(c.load_adjustment_interval_seconds).toBe(10);
    expect('ttft' in c).toBe(false);
  });

  it('ignores live-deployment fields and rejects unknown ones', () => {
    expect(parse({ environment: 'kubernetes', backend: 'vllm', report_filename: 'x.html' }).ttft_ms).toBe(
      500,
    );
    expect(issue({ ttft_msec: 3 }).message).toMatch(/ttft_msec/);
  });

  it('names the field of each problem', () => {
    expect(issue({ fpm_sample_bucket_size: 10 }).path).toBe('fpm_sample_bucket_size');
    expect(
      issue({
        optimization_target: 'sla',
        enable_load_scaling: true,
        load_adjustment_interval_seconds: 300,
        throughput_adjustment_interval_seconds: 180,
      }).path,
    ).toBe('load_adjustment_interval_seconds');
    expect(issue({ optimization_target: 'sla', enable_throughput_scaling: false }).path).toBe(
      'enable_load_scaling',
    );
    expect(issue({ ttft_ms: -1 }).path).toBe('ttft_ms');
    expect(issue({ ttft: 1, ttft_ms: 2 }).path).toBe('ttft_ms');
    expect(issue({ decode_scale_up_kv_rate: 20, decode_scale_down_kv_rate: 40 }).path).toBe(
      'decode_scale_up_kv_rate',
    );
    expect(issue({ min_endpoint: 3, max_endpoint: 2 }).path).toBe('max_endpoint');
    expect(issue({ load_predictor: 'lstm' }).path).toBe('load_predictor');
  });

  it('checks the configuration against the cluster it drives', () => {
    const agg = [{ role: 'aggregated' as const, workers: 2, gpusPerWorker: 1 }];
    const dis = [
      { role: 'prefill' as const, workers: 1, gpusPerWorker: 2 },
      { role: 'decode' as const, workers: 2, gpusPerWorker: 1 },
    ];
    expect(checkPlannerAgainstCluster(parse({}), agg)).toBeNull();
    expect(checkPlannerAgainstCluster(parse({ mode: 'disagg' }), agg)?.field).toBe('mode');
    expect(checkPlannerAgainstCluster(parse({ optimization_target: 'load' }), dis)?.field).toBe(
      'prefill_scale_up_queue_tokens',
    );
    expect(checkPlannerAgainstCluster(parse({ max_gpu_budget: 3 }), dis)?.field).toBe('max_gpu_budget');
    expect(checkPlannerAgainstCluster(parse({ min_endpoint: { decode: 3 } }), dis)?.field).toBe(
      'min_endpoint',
    );
    expect(checkPlannerAgainstCluster(parse({ prefill_engine_num_gpu: 1 }), dis)?.field).toBe(
      'prefill_engine_num_gpu',
    );
    // A decode-only planner leaves the prefill pool alone, whatever its size.
    expect(
      checkPlannerAgainstCluster(parse({ mode: 'decode', min_endpoint: { prefill: 5 } }), dis),
    ).toBeNull();
    const p = parse({ min_endpoint: { prefill: 2 }, max_endpoint: 6 });
    expect(replicaBounds(p, 'prefill')).toEqual({ min: 2, max: 6 });
    expect(replicaBounds(p, 'decode')).toEqual({ min: 1, max: 6 });
  });
});
