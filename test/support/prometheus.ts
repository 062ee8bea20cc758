import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A real Prometheus server for tests and demos: built once by hack/install-prometheus.sh (cached under
 * ~/.cache/servetune), started on a free loopback port with a temporary config and data directory, a short
 * scrape interval, and targets in a file_sd file the test can rewrite while Prometheus runs.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Path of the Prometheus binary (builds it on first use: a few minutes from the Go module proxy). */
export function prometheusBinary(): string {
  if (process.env.SERVETUNE_PROMETHEUS) return process.env.SERVETUNE_PROMETHEUS;
  const out = execFileSync('bash', [join(ROOT, 'hack/install-prometheus.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 30 * 60_000,
  });
  const bin = out.trim().split('\n').pop()!;
  process.env.SERVETUNE_PROMETHEUS = bin;
  return bin;
}

export interface ScrapeTarget {
  /** host:port */
  address: string;
  /** Extra target labels (e.g. `dynamo_namespace`, as Dynamo's PodMonitor adds from a pod label). */
  labels?: Record<string, string>;
}

export interface PrometheusOptions {
  targets?: ScrapeTarget[];
  /** Scrape and evaluation interval, e.g. '500ms' (default '1s'). */
  scrapeInterval?: string;
  /** Job name (default 'servetune-test'). */
  job?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export class PrometheusServer {
  readonly url: string;
  private readonly proc: ChildProcess;
  private readonly dir: string;
  private readonly targetsFile: string;
  private log = '';

  private constructor(proc: ChildProcess, url: string, dir: string, targetsFile: string) {
    this.proc = proc;
    this.url = url;
    this.dir = dir;
    this.targetsFile = targetsFile;
    proc.stderr?.on('data', (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-20_000);
    });
  }

  static async start(opts: PrometheusOptions = {}): Promise<PrometheusServer> {
    const bin = prometheusBinary();
    const dir = mkdtempSync(join(tmpdir(), 'servetune-prom-'));
    const targetsFile = join(dir, 'targets.json');
    writeTargets(targetsFile, opts.targets ?? []);
    const interval = opts.scrapeInterval ?? '1s';
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        `  scrape_interval: ${interval}`,
        `  evaluation_interval: ${interval}`,
        'scrape_configs:',
        `  - job_name: ${opts.job ?? 'servetune-test'}`,
        '    file_sd_configs:',
        `      - files: ['${targetsFile}']`,
        '        refresh_interval: 1s',
        '',
      ].join('\n'),
    );
    const port = await freePort();
    const proc = spawn(
      bin,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--web.enable-lifecycle',
        '--storage.tsdb.retention.time=1d',
      ],
      // Without built-in UI assets Prometheus reads its working directory at start-up.
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const server = new PrometheusServer(proc, `http://127.0.0.1:${port}`, dir, targetsFile);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`prometheus exited (${proc.exitCode}):\n${server.log}`);
      try {
        const r = await fetch(`${server.url}/-/ready`);
        if (r.ok) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`prometheus not ready after 30 s:\n${server.log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Replaces the scrape targets (file_sd: picked up within about a second). */
  setTargets(targets: ScrapeTarget[]): void {
    writeTargets(this.targetsFile, targets);
  }

  /** An instant query; throws on a Prometheus error. */
  async query(promql: string, time?: number): Promise<PromSample[]> {
    const u = new URL(`${this.url}/api/v1/query`);
    u.searchParams.set('query', promql);
    if (time !== undefined) u.searchParams.set('time', String(time));
    const res = await fetch(u);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: PromSample[] };
    };
    if (body.status !== 'success') throw new Error(`PromQL ${promql}: ${body.error}`);
    if (body.data?.resultType !== 'vector') throw new Error(`PromQL ${promql}: got ${body.data?.resultType}`);
    return body.data.result;
  }

  /** The single value of a query that must return exactly one series, or undefined when it returns none. */
  async scalar(promql: string, time?: number): Promise<number | undefined> {
    const r = await this.query(promql, time);
    if (r.length === 0) return undefined;
    if (r.length > 1) throw new Error(`PromQL ${promql}: ${r.length} series`);
    return Number(r[0].value[1]);
  }

  /** Active targets and their health. */
  async targets(): Promise<{ scrapeUrl: string; health: string; lastError: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets?state=active`);
    const body = (await res.json()) as {
      data: { activeTargets: { scrapeUrl: string; health: string; lastError: string }[] };
    };
    return body.data.activeTargets;
  }

  /** Resolves once every active target has been scraped successfully at least once. */
  async waitForTargetsUp(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = await this.targets();
      if (t.length > 0 && t.every((x) => x.health === 'up')) return;
      if (Date.now() > deadline) throw new Error(`targets not up: ${JSON.stringify(t)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function writeTargets(file: string, targets: ScrapeTarget[]): void {
  // Written to a temporary name and renamed, so Prometheus never reads a half-written file.
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(targets.map((t) => ({ targets: [t.address], labels: t.labels ?? {} }))));
  renameSync(tmp, file);
}

/** A free loopback TCP port (the OS picks; a tiny race with other processes is acceptable in tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
