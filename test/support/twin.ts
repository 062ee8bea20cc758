import { type SimulationConfig, SimulationConfigSchema } from '../../src/config/schema.ts';
import { startTwin, type Twin, type TwinOptions } from '../../src/twin/twin.ts';
import type { ScrapeTarget } from './prometheus.ts';

/**
 * Starts twins for integration tests (the operator's rollout and telemetry tests use these too): in-process,
 * on a free loopback port, silent, stopped by `stop()` (or all at once by `stopTestTwins()` in an afterAll).
 *
 *   const twin = await startTestTwin({ config: { workers: 2 }, trace: { path, loop: false }, timeScale: 10 });
 *   prometheus.setTargets([twinTarget(twin)]);
 *
 * `config` is the simulator's configuration (src/config/schema.ts, defaults filled in); with `cluster`, the
 * fleet comes from the DynamoGraphDeployment instead and `config` only sets what the DGD does not say.
 */

export type TestTwinOptions = Partial<Omit<TwinOptions, 'config' | 'port'>> & {
  config?: Record<string, unknown>;
  port?: number;
};

const running = new Set<Twin>();

export async function startTestTwin(o: TestTwinOptions = {}): Promise<Twin> {
  // The twin's traffic is its own (HTTP, `trace`): the configuration's workload only carries trace settings.
  const config: SimulationConfig = SimulationConfigSchema.parse({
    ...o.config,
    workload: { trace: '(live)', ...((o.config?.workload as object | undefined) ?? {}) },
  });
  const twin = await startTwin({ ...o, config, port: o.port ?? 0, host: o.host ?? '127.0.0.1' });
  running.add(twin);
  const stop = twin.stop.bind(twin);
  twin.stop = async (drainMs = 2_000) => {
    running.delete(twin);
    return stop(drainMs);
  };
  return twin;
}

export async function stopTestTwins(): Promise<void> {
  await Promise.all([...running].map((t) => t.stop(0)));
}

/** The twin as a Prometheus scrape target, with the `dynamo_namespace` label Dynamo's PodMonitor adds. */
export function twinTarget(twin: Twin): ScrapeTarget {
  return { address: `127.0.0.1:${twin.port}`, labels: { dynamo_namespace: twin.metrics.dynamoNamespace } };
}
