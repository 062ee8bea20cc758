import { existsSync, readFileSync } from 'node:fs';
import { pino } from 'pino';
import { parseDuration } from '../api/index.ts';
import { LEADER_ELECTION_DEFAULTS, validateLeaderElection } from '../operator/kube/leader.ts';
import { Operator } from '../operator/manager.ts';
import { parseUrlAllowList } from '../operator/sweep/url-policy.ts';
import { UsageError } from './errors.ts';
import { type FlagSpec, parseFlags, renderHelp } from './flags.ts';

/** `servetune operator`: runs the DeploymentTuning controller until SIGTERM/SIGINT. */

const USAGE = `Usage: servetune operator [--kubeconfig FILE] [--namespace NS] [options]

Runs the controller. Without --kubeconfig it uses the in-cluster service account (or $KUBECONFIG / ~/.kube/config
outside a cluster). Serves /healthz, /readyz and /metrics on --http-port.`;

export const OPERATOR_FLAGS: FlagSpec[] = [
  {
    name: 'kubeconfig',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'kubeconfig file (default: in-cluster)',
  },
  {
    name: 'namespace',
    path: null,
    kind: 'string',
    metavar: 'NS',
    help: 'watch one namespace (default: all)',
  },
  {
    name: 'http-port',
    path: null,
    kind: 'int',
    metavar: 'PORT',
    help: 'port of /healthz, /readyz, /metrics (8080)',
  },
  {
    name: 'no-leader-elect',
    path: null,
    kind: 'boolean',
    help: 'run without leader election (single replica only)',
  },
  {
    name: 'leader-election-namespace',
    path: null,
    kind: 'string',
    metavar: 'NS',
    help: 'namespace of the Lease (default: the pod namespace, --namespace, or default)',
  },
  {
    name: 'leader-election-id',
    path: null,
    kind: 'string',
    metavar: 'NAME',
    help: 'name of the Lease; replicas with the same one elect one leader (servetune-operator)',
  },
  {
    name: 'leader-election-lease-duration',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'how long a standby waits, after it last saw the lease renewed, before taking over (15s)',
  },
  {
    name: 'leader-election-renew-deadline',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'how long the leader keeps trying to renew before it stops acting (10s; below the lease duration)',
  },
  {
    name: 'leader-election-retry-period',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'pause between lease attempts (2s)',
  },
  { name: 'workers', path: null, kind: 'int', help: 'concurrent reconciles (2)' },
  {
    name: 'max-concurrent-sweeps',
    path: null,
    kind: 'int',
    help: 'sweeps running at once, cluster-wide (1)',
  },
  { name: 'sweep-threads', path: null, kind: 'int', help: 'worker threads of one sweep (1)' },
  {
    name: 'trace-root',
    path: null,
    kind: 'string',
    metavar: 'DIRS',
    help: 'comma-separated directories file trace sources may read (default: none, file sources refused)',
  },
  {
    name: 'trace-url-allow',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: 'comma-separated hosts, *.suffix patterns or CIDRs that URL trace sources may reach besides public https (default: none)',
  },
  {
    name: 'prometheus-url',
    path: null,
    kind: 'string',
    metavar: 'URL',
    help: "the cluster's Prometheus, which scrapes Dynamo's frontends: changes are verified against it (default: none, so changes stay unverified and never pass)",
  },
  {
    name: 'metrics-url-allow',
    path: null,
    kind: 'string',
    metavar: 'LIST',
    help: 'hosts, *.suffix patterns or CIDRs a DeploymentTuning may name as its Prometheus besides public https (default: none)',
  },
  {
    name: 'prometheus-token-secrets',
    path: null,
    kind: 'string',
    metavar: 'NAMES',
    help: "Secret names (in a DeploymentTuning's own namespace) a Prometheus source may take its bearer token from; grant get on exactly these (default: none)",
  },
  {
    name: 'max-trace-bytes',
    path: null,
    kind: 'int',
    metavar: 'BYTES',
    help: 'largest trace one sweep reads (67108864 = 64 MiB)',
  },
  {
    name: 'max-trace-rows',
    path: null,
    kind: 'int',
    metavar: 'ROWS',
    help: 'most trace rows one sweep reads (2000000)',
  },
  {
    name: 'min-schedule-interval',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'least time between two sweeps of one DeploymentTuning, whatever its schedule (5m)',
  },
  {
    name: 'max-sweep-duration',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'cap on spec.sweepTimeout: a sweep running longer is stopped and recorded as Failed (30m)',
  },
  {
    name: 'max-sweep-crashes',
    path: null,
    kind: 'int',
    help: 'sweeps of one object that may crash in a row before its slot is given up as Failed (3)',
  },
  {
    name: 'sweep-memory-mb',
    path: null,
    kind: 'int',
    metavar: 'MIB',
    help: 'V8 heap of one sweep (default: 70 % of the memory limit less 300 MiB, shared by concurrent sweeps)',
  },
  {
    name: 'log-level',
    path: null,
    kind: 'string',
    values: { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error' },
    help: 'trace, debug, info (default), warn, error',
  },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export async function operatorCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const f = parseFlags(argv, OPERATOR_FLAGS).values;
  if (f.get('help')) {
    out.write(renderHelp(USAGE, OPERATOR_FLAGS));
    return 0;
  }
  const kubeconfig = f.get('kubeconfig') as string | undefined;
  if (kubeconfig && !existsSync(kubeconfig)) throw new UsageError(`--kubeconfig: ${kubeconfig} not found`);
  const home = process.env.HOME ?? '';
  if (
    !kubeconfig &&
    !process.env.KUBERNETES_SERVICE_HOST &&
    !process.env.KUBECONFIG &&
    !existsSync(`${home}/.kube/config`)
  ) {
    throw new UsageError(
      'no cluster to talk to: pass --kubeconfig FILE, set KUBECONFIG, or run in a cluster',
    );
  }
  const positive = (name: string) => {
    const v = f.get(name) as number | undefined;
    if (v !== undefined && v < 1) throw new UsageError(`--${name}: must be at least 1`);
    return v;
  };
  const duration = (name: string, fallback: number) => {
    const v = f.get(name) as string | undefined;
    if (v === undefined) return fallback;
    try {
      return parseDuration(v);
    } catch {
      throw new UsageError(`--${name}: '${v}' is not a duration such as 500ms, 15s or 1m`);
    }
  };
  const lease = {
    leaseDurationMs: duration('leader-election-lease-duration', LEADER_ELECTION_DEFAULTS.leaseDurationMs),
    renewDeadlineMs: duration('leader-election-renew-deadline', LEADER_ELECTION_DEFAULTS.renewDeadlineMs),
    retryPeriodMs: duration('leader-election-retry-period', LEADER_ELECTION_DEFAULTS.retryPeriodMs),
  };
  try {
    validateLeaderElection(lease);
  } catch (e) {
    const flag: Record<string, string> = {
      leaseDurationMs: '--leader-election-lease-duration',
      renewDeadlineMs: '--leader-election-renew-deadline',
      retryPeriodMs: '--leader-election-retry-period',
    };
    throw new UsageError(
      (e as Error).message.replace(/leaseDurationMs|renewDeadlineMs|retryPeriodMs/, (k) => flag[k]),
    );
  }
  let urlPolicy: ReturnType<typeof parseUrlAllowList> | undefined;
  try {
    const allow = f.get('trace-url-allow') as string | undefined;
    if (allow !== undefined) urlPolicy = parseUrlAllowList(allow.split(','));
  } catch (e) {
    throw new UsageError(`--trace-url-allow: ${(e as Error).message}`);
  }
  let metricsUrlPolicy: ReturnType<typeof parseUrlAllowList> | undefined;
  try {
    const allow = f.get('metrics-url-allow') as string | undefined;
    if (allow !== undefined) metricsUrlPolicy = parseUrlAllowList(allow.split(','));
  } catch (e) {
    throw new UsageError(`--metrics-url-allow: ${(e as Error).message}`);
  }
  const prometheusTokenSecrets = ((f.get('prometheus-token-secrets') as string | undefined) ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  const badSecret = prometheusTokenSecrets.find(
    (n) => !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(n) || n.length > 253,
  );
  if (badSecret !== undefined)
    throw new UsageError(`--prometheus-token-secrets: '${badSecret}' is not a Secret name`);
  const prometheusUrl = f.get('prometheus-url') as string | undefined;
  if (prometheusUrl !== undefined && !/^https?:\/\/[^/?#@\s]+([/?#]\S*)?$/.test(prometheusUrl))
    throw new UsageError(`--prometheus-url: '${prometheusUrl}' is not an http(s) URL with a host`);
  const positiveDuration = (name: string) => {
    const v = f.get(name) as string | undefined;
    if (v === undefined) return undefined;
    const ms = duration(name, 0);
    if (!(ms > 0)) throw new UsageError(`--${name}: must be longer than 0`);
    return ms;
  };
  const namespace = f.get('namespace') as string | undefined;
  const podNamespace = existsSync(SA_NAMESPACE) ? readFileSync(SA_NAMESPACE, 'utf8').trim() : undefined;
  const logger = pino({ name: 'servetune-operator', level: (f.get('log-level') as string) ?? 'info' });
  const op = new Operator({
    kubeconfig,
    namespace,
    httpPort: (f.get('http-port') as number | undefined) ?? 8080,
    workers: positive('workers'),
    maxConcurrentSweeps: positive('max-concurrent-sweeps'),
    sweepThreads: positive('sweep-threads'),
    urlPolicy,
    metricsUrlPolicy,
    prometheusUrl,
    prometheusTokenSecrets,
    maxTraceBytes: positive('max-trace-bytes'),
    maxTraceRows: positive('max-trace-rows'),
    minScheduleIntervalMs: positiveDuration('min-schedule-interval'),
    maxSweepDurationMs: positiveDuration('max-sweep-duration'),
    maxSweepCrashes: positive('max-sweep-crashes'),
    sweepMemoryMb: positive('sweep-memory-mb'),
    traceRoots: ((f.get('trace-root') as string | undefined) ?? '')
      .split(',')
      .map((d) => d.trim())
      .filter((d) => d !== ''),
    leaderElection: {
      enabled: !f.get('no-leader-elect'),
      namespace: (f.get('leader-election-namespace') as string) ?? podNamespace ?? namespace ?? 'default',
      name: f.get('leader-election-id') as string | undefined,
      ...lease,
    },
    logger,
  });
  await op.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'Shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await op.stop();
  return 0;
}
