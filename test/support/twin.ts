import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type SimulationConfig, SimulationConfigSchema } from '../../src/config/schema.ts';
import type { KubeClient } from '../../src/operator/kube/client.ts';
import { parseDegrade } from '../../src/twin/fleet.ts';
import { startTwin, type Twin, type TwinOptions } from '../../src/twin/twin.ts';
import { freePort, type PrometheusOptions, PrometheusServer, type ScrapeTarget } from './prometheus.ts';

/**
 * Starts twins for integration tests (the operator's rollout and telemetry tests use these too): in-process,
 * on a free loopback port, silent, stopped by `stop()` (or all at once by `stopTestTwins()` in an afterAll).
 *
 * Standalone, replaying a trace ten times faster than real time:
 *
 *   const twin = await startTestTwin({ config: { workers: 2 }, trace: { path, loop: false }, timeScale: 10 });
 *   prometheus.setTargets([twinTarget(twin)]);
 *
 * Standing for a DynamoGraphDeployment on the test control plane (v1beta1 or v1alpha1, e.g. `createDgd`),
 * scraped by a real Prometheus, slower whenever its settings differ from those it started with (so a rollout
 * really regresses and a rollback to the baseline recovers):
 *
 *   const { twin, prometheus } = await startDgdTwin({
 *     client, namespace, target: 'my-dgd',
 *     trace: { path: TRACE, loop: true }, timeScale: 20,
 *     degrade: '3:changed=true',          // or '3:tp=2', '3:maxNumSeqs=64,role=decode', or '3' (always)
 *   });
 *   // The twin writes the DGD's status as Dynamo's operator does (Ready condition, per-component replicas),
 *   // so a rollout's wait for Ready passes; PromQL at prometheus.url sees Dynamo's frontend metrics with
 *   // dynamo_namespace="<namespace>-<target>".
 *
 * As a process (`servetune twin`, as the demo and the chart run it), e.g. against the test control plane:
 *
 *   const p = await spawnTwin(['--kubeconfig', kc, '--namespace', ns, '--target', 'my-dgd',
 *     '--trace', TRACE, '--time-scale', '20', '--degrade', '3:changed=true']);
 *   ... p.url, p.port; await p.stop();   // SIGTERM: drains, flushes, resolves with the exit code
 *
 * `config` is the simulator's configuration (src/config/schema.ts, defaults filled in; e.g. `startupTimeS`
 * for the cold start of a worker the DGD adds); with `cluster`, the fleet comes from the DGD instead and
 * `config` only sets what the DGD does not say. `degrade` takes the text of `servetune twin --degrade`.
 */

export type TestTwinOptions = Partial<Omit<TwinOptions, 'config' | 'port'>> & {
  config?: Record<string, unknown>;
  port?: number;
  /** `--degrade FACTOR[:SELECTOR]` (src/twin/fleet.ts parseDegrade); overrides `faults.degrade`. */
  degrade?: string;
};

const running = new Set<Twin>();
const prometheuses = new Set<PrometheusServer>();

export async function startTestTwin(o: TestTwinOptions = {}): Promise<Twin> {
  // The twin's traffic is its own (HTTP, `trace`): the configuration's workload only carries trace settings.
  const config: SimulationConfig = SimulationConfigSchema.parse({
    ...o.config,
    workload: { trace: '(live)', ...((o.config?.workload as object | undefined) ?? {}) },
  });
  const faults = o.degrade ? { ...o.faults, degrade: parseDegrade(o.degrade) } : o.faults;
  const twin = await startTwin({ ...o, faults, config, port: o.port ?? 0, host: o.host ?? '127.0.0.1' });
  running.add(twin);
  const stop = twin.stop.bind(twin);
  twin.stop = async (drainMs = 2_000) => {
    running.delete(twin);
    return stop(drainMs);
  };
  return twin;
}

/** Stops every twin (processes of `spawnTwin` too, and Prometheus of `startDgdTwin`/`scrapeTwins`). */
export async function stopTestTwins(): Promise<void> {
  await Promise.all([...running].map((t) => t.stop(0)));
  await Promise.all([...processes].map((p) => p.stop('SIGKILL')));
  await Promise.all([...prometheuses].map((p) => p.stop()));
  prometheuses.clear();
}

/** The twin as a Prometheus scrape target, with the `dynamo_namespace` label Dynamo's PodMonitor adds. */
export function twinTarget(twin: Twin): ScrapeTarget {
  return { address: `127.0.0.1:${twin.port}`, labels: { dynamo_namespace: twin.metrics.dynamoNamespace } };
}

/** A real Prometheus scraping these twins (every 500 ms unless told), once every target is up. */
export async function scrapeTwins(twins: Twin[], opts: PrometheusOptions = {}): Promise<PrometheusServer> {
  const prometheus = await PrometheusServer.start({
    scrapeInterval: '500ms',
    ...opts,
    targets: twins.map(twinTarget),
  });
  prometheuses.add(prometheus);
  await prometheus.waitForTargetsUp();
  return prometheus;
}

export type DgdTwinOptions = Omit<TestTwinOptions, 'cluster'> & {
  client: KubeClient;
  namespace: string;
  /** The DynamoGraphDeployment's name. */
  target: string;
  /** Start a Prometheus scraping the twin (default true). */
  prometheus?: boolean | PrometheusOptions;
};

/**
 * A twin following one DGD (it waits for the DGD to exist), and a Prometheus scraping it. Both are stopped
 * by `stopTestTwins()`.
 */
export async function startDgdTwin(
  o: DgdTwinOptions,
): Promise<{ twin: Twin; prometheus: PrometheusServer | undefined }> {
  const { client, namespace, target, prometheus: withProm = true, ...rest } = o;
  const twin = await startTestTwin({ ...rest, cluster: { client, namespace, target } });
  const prometheus =
    withProm === false ? undefined : await scrapeTwins([twin], withProm === true ? {} : withProm);
  return { twin, prometheus };
}

export interface TwinProcess {
  proc: ChildProcess;
  url: string;
  port: number;
  /** What the process wrote so far. */
  output(): { stdout: string; stderr: string };
  /** Sends `signal` (default SIGTERM: drain and flush) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const processes = new Set<TwinProcess>();
const BIN = fileURLToPath(new URL('../../bin/servetune.js', import.meta.url));

/**
 * Runs `servetune twin ARGS` on a free loopback port (`--http-port`, `--host` and `--log-level warn` are
 * added unless given) and resolves once it serves; fails with its output if it exits or is not serving
 * within `timeoutMs` (a twin following a DGD waits for the DGD first).
 */
export async function spawnTwin(args: string[], opts: { timeoutMs?: number } = {}): Promise<TwinProcess> {
  const given = (flag: string) => args.includes(flag);
  const port = given('--http-port') ? Number(args[args.indexOf('--http-port') + 1]) : await freePort();
  const extra = [
    ...(given('--http-port') ? [] : ['--http-port', String(port)]),
    ...(given('--host') ? [] : ['--host', '127.0.0.1']),
    ...(given('--log-level') ? [] : ['--log-level', 'warn']),
  ];
  const proc = spawn(process.execPath, [BIN, 'twin', ...args, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d) => {
    stdout += d;
  });
  proc.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  const p: TwinProcess = {
    proc,
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => ({ stdout, stderr }),
    async stop(signal = 'SIGTERM') {
      processes.delete(p);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  processes.add(p);
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!stdout.includes('serving')) {
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      await p.stop('SIGKILL');
      throw new Error(`servetune twin did not start serving:\n${stdout}\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return p;
}
