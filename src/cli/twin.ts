import { existsSync, mkdirSync, statSync } from 'node:fs';
import { pino } from 'pino';
import { parseDuration } from '../api/index.ts';
import { parseDegrade } from '../twin/fleet.ts';
import { startTwin, type TwinOptions } from '../twin/twin.ts';
import { UsageError } from './errors.ts';
import { type FlagSpec, parseFlags, renderHelp } from './flags.ts';
import { resolveSimulateConfig } from './simulate-config.ts';
import { SIMULATE_FLAGS } from './simulate-flags.ts';

/**
 * `servetune twin`: a live twin of a Dynamo deployment. Simulated workers on a virtual clock tied to the wall
 * clock serve an OpenAI-compatible API and Dynamo's metrics, fed by a trace and/or HTTP clients, standalone
 * (the simulator's flags describe the fleet) or following a DynamoGraphDeployment in a cluster.
 */

const USAGE = `Usage: servetune twin [--trace FILE] [--workers N ...] [--http-port PORT] [options]
       servetune twin --kubeconfig FILE --namespace NS --target NAME [options]

Runs simulated Dynamo workers in real time (--time-scale X: X simulated seconds per second) behind an
OpenAI-compatible API (POST /v1/chat/completions, /v1/completions; GET /v1/models) with Dynamo's
/metrics, /healthz and /readyz. A trace (--trace, looped unless --once) and HTTP clients both send traffic.
With --target the fleet follows that DynamoGraphDeployment and the twin writes its status as Dynamo does.
SIGTERM drains requests in flight (--drain-timeout) and flushes the request trace.

The simulator's engine, router, timing and hardware flags (see 'servetune simulate --help') set the fleet,
or, with --target, what the DGD does not say.`;

/** Flags of the simulator that describe traffic the twin does not take (it has its own sources). */
const SIMULATOR_ONLY = new Set([
  'request-count',
  'input-tokens',
  'input-tokens-stddev',
  'output-tokens',
  'output-tokens-stddev',
  'request-rate',
  'arrival',
  'shared-prefix-ratio',
  'num-prefix-groups',
  'turns-per-session',
  'inter-turn-delay-ms',
  'arrival-seed',
  'concurrency',
  'json',
  'quiet',
  'slo',
  'sla-ttft-ms',
  'sla-itl-ms',
  'sla-e2e-ms',
  'help',
  // The twin's own (a cold start matters to it without the Planner too: the DGD adds workers).
  'startup-time',
]);

const string = (name: string, metavar: string, help: string): FlagSpec => ({
  name,
  path: null,
  kind: 'string',
  metavar,
  help,
});

export const TWIN_FLAGS: FlagSpec[] = [
  {
    name: 'http-port',
    path: null,
    kind: 'int',
    metavar: 'PORT',
    help: 'port of the API and /metrics (8000, as Dynamo)',
  },
  string('host', 'ADDR', 'address to listen on (0.0.0.0)'),
  string('model', 'NAME', 'served model name (default: the hardware model, or servetune-twin)'),
  {
    name: 'time-scale',
    path: null,
    kind: 'number',
    metavar: 'X',
    help: 'simulated seconds per wall second (1)',
  },
  {
    name: 'startup-time',
    path: null,
    kind: 'number',
    metavar: 'SECONDS',
    help: 'cold start of a worker the DGD or the Planner adds, before it serves (0)',
  },
  { name: 'once', path: null, kind: 'boolean', help: 'play the trace once (default: loop it)' },
  string('drift-at', 'DURATION', 'switch to --drift-trace after this much simulated time'),
  string('drift-trace', 'FILE', 'the trace that replaces --trace at --drift-at'),
  string(
    'request-trace-dir',
    'DIR',
    "write Dynamo request traces (DYN_REQUEST_TRACE's rotating gzip JSONL) here",
  ),
  {
    name: 'request-trace-max-segments',
    path: null,
    kind: 'int',
    help: 'keep at most N request-trace segments',
  },
  { name: 'request-trace-roll-lines', path: null, kind: 'int', help: 'start a new segment every N records' },
  { name: 'max-body-bytes', path: null, kind: 'int', help: 'largest request body (8388608)' },
  { name: 'max-concurrent-requests', path: null, kind: 'int', help: 'requests in flight before 503 (4096)' },
  {
    name: 'default-max-tokens',
    path: null,
    kind: 'int',
    help: 'output tokens of a request without max_tokens (256)',
  },
  {
    name: 'context-length',
    path: null,
    kind: 'int',
    help: "the model's context (default: --max-model-len or the KV cache)",
  },
  string('drain-timeout', 'DURATION', 'how long SIGTERM waits for requests in flight (30s)'),
  string(
    'degrade',
    'FACTOR[:SELECTOR]',
    'forward passes FACTOR x slower, for settings matching tp=,role=,router=,... or changed=true (all)',
  ),
  string('stall', 'AT:DURATION[,...]', 'at simulated time AT, no pass starts for DURATION'),
  string('crash-worker', 'AT[:ID][,...]', 'at simulated time AT, kill worker ID (default: a ready one)'),
  string(
    'restart-after',
    'DURATION|never',
    'standalone: a crashed worker serves again after this cold start (--startup-time, else the model load)',
  ),
  string('kubeconfig', 'FILE', 'kubeconfig of the cluster (default: in-cluster)'),
  string('namespace', 'NS', 'namespace of --target'),
  string('target', 'NAME', 'follow this DynamoGraphDeployment'),
  string(
    'dynamo-namespace',
    'NAME',
    "dynamo_namespace label of worker metrics (default <namespace>-<target>, or 'dynamo')",
  ),
  {
    name: 'log-level',
    path: null,
    kind: 'string',
    values: { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error' },
    help: 'trace, debug, info (default), warn, error',
  },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

const SIM_FLAGS = SIMULATE_FLAGS.filter((f) => !SIMULATOR_ONLY.has(f.name));
const ALL_FLAGS = [...TWIN_FLAGS, ...SIM_FLAGS];
const TWIN_NAMES = new Set(TWIN_FLAGS.flatMap((f) => [f.name, ...(f.aliases ?? [])]));

/** argv without the twin's own flags (and their values): what the simulator's configuration reads. */
function simulatorArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.startsWith('--') ? a.slice(2).split('=')[0] : a.startsWith('-') ? a.slice(1) : undefined;
    if (name !== undefined && TWIN_NAMES.has(name)) {
      const spec = TWIN_FLAGS.find((f) => f.name === name || f.aliases?.includes(name))!;
      if (!a.includes('=') && spec.kind !== 'boolean' && spec.kind !== 'negate') i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

function duration(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch {
    throw new UsageError(`--${flag}: '${text}' is not a duration such as 500ms, 90s or 1h30m`);
  }
}

/** Longest cold start of a restarted worker (a day: anything longer is a typo, or `never`). */
const MAX_RESTART_MS = 86_400_000;

/** `--restart-after`: a duration up to a day, or `never` (null: the crashed worker stays dead). */
export function parseRestartAfter(text: string): number | null {
  if (text.trim().toLowerCase() === 'never') return null;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UsageError(`--restart-after: '${text}' is not a duration such as 90s or 5m, nor 'never'`);
  }
  if (!(ms >= 0 && ms <= MAX_RESTART_MS)) {
    throw new UsageError(`--restart-after: '${text}' must be from 0s to 24h (or 'never')`);
  }
  return ms;
}

function atList<T>(flag: string, text: string, item: (at: number, rest: string | undefined) => T): T[] {
  return text.split(',').map((part) => {
    const [at, rest] = part.split(':', 2);
    return item(duration(flag, at), rest);
  });
}

/** Parses and checks everything before anything starts; every refusal names the flag. */
export async function resolveTwinOptions(
  argv: string[],
): Promise<{ options: TwinOptions; help: boolean; logLevel: string }> {
  const parsed = parseFlags(argv, ALL_FLAGS);
  const f = parsed.values;
  if (f.get('help')) return { options: undefined as never, help: true, logLevel: 'info' };
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`);
  const target = f.get('target') as string | undefined;
  const namespace = f.get('namespace') as string | undefined;
  const kubeconfig = f.get('kubeconfig') as string | undefined;
  if ((namespace !== undefined || kubeconfig !== undefined) && target === undefined) {
    throw new UsageError(
      `--${namespace !== undefined ? 'namespace' : 'kubeconfig'} needs --target NAME (the DynamoGraphDeployment to follow)`,
    );
  }
  if (target !== undefined && namespace === undefined) throw new UsageError('--target needs --namespace NS');
  if (kubeconfig !== undefined && !existsSync(kubeconfig))
    throw new UsageError(`--kubeconfig: ${kubeconfig} not found`);
  // The simulator's settings, with every check `simulate` makes; the twin's traffic is its own, so the
  // configuration is resolved with the twin's trace (or, without one, as a live-only workload).
  const simArgv = simulatorArgv(argv);
  const traceGiven = simArgv.some((a) => a === '--trace' || a.startsWith('--trace='));
  const resolved = await resolveSimulateConfig(traceGiven ? simArgv : [...simArgv, '--trace', '(live)']);
  const startup = f.get('startup-time') as number | undefined;
  if (startup !== undefined && !(startup >= 0 && startup <= 86_400)) {
    throw new UsageError(`--startup-time: ${startup} must be from 0 to 86400 seconds`);
  }
  const config = startup === undefined ? resolved.config : { ...resolved.config, startupTimeS: startup };
  const trace = traceGiven ? config.workload.trace : undefined;
  if (trace !== undefined && (!existsSync(trace) || !statSync(trace).isFile())) {
    throw new UsageError(`--trace: ${trace} ${existsSync(trace) ? 'is not a regular file' : 'not found'}`);
  }
  const driftAt = f.get('drift-at') as string | undefined;
  const driftTrace = f.get('drift-trace') as string | undefined;
  if ((driftAt === undefined) !== (driftTrace === undefined)) {
    throw new UsageError(
      `--${driftAt === undefined ? 'drift-trace' : 'drift-at'} needs --${driftAt === undefined ? 'drift-at' : 'drift-trace'}`,
    );
  }
  if (driftTrace !== undefined && !existsSync(driftTrace))
    throw new UsageError(`--drift-trace: ${driftTrace} not found`);
  const timeScale = (f.get('time-scale') as number | undefined) ?? 1;
  if (!(timeScale > 0) || timeScale > 10_000)
    throw new UsageError(`--time-scale: ${timeScale} must be above 0 and at most 10000`);
  const port = (f.get('http-port') as number | undefined) ?? 8000;
  if (port < 0 || port > 65_535) throw new UsageError(`--http-port: ${port} is not a port`);
  const positive = (name: string, max: number) => {
    const v = f.get(name) as number | undefined;
    if (v !== undefined && (v < 1 || v > max))
      throw new UsageError(`--${name}: ${v} must be from 1 to ${max}`);
    return v;
  };
  const dir = f.get('request-trace-dir') as string | undefined;
  if (dir !== undefined) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new UsageError(`--request-trace-dir: cannot create ${dir}: ${(e as Error).message}`);
    }
  }
  let degrade: ReturnType<typeof parseDegrade> | undefined;
  const degradeText = f.get('degrade') as string | undefined;
  if (degradeText !== undefined) {
    try {
      degrade = parseDegrade(degradeText);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const stallText = f.get('stall') as string | undefined;
  const stalls = stallText
    ? atList('stall', stallText, (atMs, rest) => {
        if (rest === undefined) throw new UsageError(`--stall: '${stallText}' needs AT:DURATION`);
        return { atMs, durationMs: duration('stall', rest) };
      })
    : undefined;
  const crashText = f.get('crash-worker') as string | undefined;
  const crashes = crashText
    ? atList('crash-worker', crashText, (atMs, rest) => {
        const worker = rest === undefined ? undefined : Number(rest);
        if (worker !== undefined && !(Number.isInteger(worker) && worker >= 0)) {
          throw new UsageError(`--crash-worker: '${rest}' is not a worker id`);
        }
        return { atMs, worker };
      })
    : undefined;
  const restartText = f.get('restart-after') as string | undefined;
  if (restartText !== undefined && target !== undefined) {
    throw new UsageError(
      '--restart-after: a twin following a DGD restarts a crashed worker after --startup-time, as the DGD does',
    );
  }
  // Standalone, a crashed worker comes back after the cold start given (--restart-after, else --startup-time);
  // without either, startTwin takes the catalog's model load time.
  const restartAfterMs =
    target !== undefined
      ? undefined
      : restartText !== undefined
        ? parseRestartAfter(restartText)
        : startup !== undefined
          ? startup * 1000
          : undefined;
  const options: TwinOptions = {
    config,
    model: f.get('model') as string | undefined,
    port,
    host: f.get('host') as string | undefined,
    timeScale,
    ...(trace !== undefined && {
      trace: {
        path: trace,
        format: config.workload.traceFormat,
        loop: !f.get('once'),
        speedup: config.workload.arrivalSpeedupRatio,
      },
    }),
    ...(driftAt !== undefined &&
      driftTrace !== undefined && { drift: { atMs: duration('drift-at', driftAt), path: driftTrace } }),
    ...(dir !== undefined && {
      requestTrace: {
        dir,
        maxSegments: positive('request-trace-max-segments', 1_000_000),
        rollLines: positive('request-trace-roll-lines', 1e9),
      },
    }),
    limits: {
      maxBodyBytes: positive('max-body-bytes', 1 << 30),
      maxConcurrent: positive('max-concurrent-requests', 1_000_000),
      defaultMaxTokens: positive('default-max-tokens', 10_000_000),
      contextLength: positive('context-length', 10_000_000),
    },
    ...(target !== undefined && namespace !== undefined && { cluster: { kubeconfig, namespace, target } }),
    faults: { degrade, stalls, crashes, ...(restartAfterMs !== undefined && { restartAfterMs }) },
    dynamoNamespace: f.get('dynamo-namespace') as string | undefined,
  };
  return { options, help: false, logLevel: (f.get('log-level') as string | undefined) ?? 'info' };
}

export async function twinCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const { options, help, logLevel } = await resolveTwinOptions(argv);
  if (help) {
    out.write(renderHelp(USAGE, ALL_FLAGS));
    return 0;
  }
  const drainText = parseFlags(argv, ALL_FLAGS).values.get('drain-timeout') as string | undefined;
  const drainMs = drainText === undefined ? 30_000 : duration('drain-timeout', drainText);
  const logger = pino({ name: 'servetune-twin', level: logLevel });
  let twin: Awaited<ReturnType<typeof startTwin>>;
  try {
    twin = await startTwin({ ...options, logger });
  } catch (e) {
    // Start-up problems the user can fix (a trace, a DGD, a port) end with one message and exit 2.
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new UsageError(`--http-port: port ${options.port} is in use`);
    if (err.name === 'TraceError' || err.name === 'ApiError' || /DynamoGraphDeployment/.test(err.message)) {
      throw new UsageError(err.message);
    }
    throw e;
  }
  logger.info({ url: twin.url, model: twin.metrics.model }, 'twin serving');
  out.write(`servetune twin serving ${twin.metrics.model} at ${twin.url} (metrics at ${twin.url}/metrics)\n`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal, inflight: twin.http.inflight }, 'draining');
  const { abandoned } = await twin.stop(drainMs);
  logger.info({ abandoned }, 'stopped');
  return 0;
}
