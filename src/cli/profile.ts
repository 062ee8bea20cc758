import { readFile, stat } from 'node:fs/promises';
import type { Distribution } from '../telemetry/profile/distribution.ts';
import type { WorkloadProfile } from '../telemetry/profile/profile.ts';
import { rebin } from '../telemetry/profile/profile.ts';
import { SynthesisError, synthesize } from '../telemetry/profile/synthesize.ts';
import { writeMooncake } from '../telemetry/trace/write.ts';
import { UsageError } from './errors.ts';
import { checkOutputPath, writeJson } from './files.ts';
import { type FlagSpec, parseFlags, renderHelp } from './flags.ts';
import { formatNumber, renderTable } from './table.ts';
import { durationFlag, parseSelector, profileOfPath, profileOfPrometheus } from './workload-source.ts';

const USAGE = `Usage: servetune profile (TRACE | DIR | --prometheus URL) [--window 30m] [--json] [options]

Prints the workload profile of recorded traffic: request rate over time, prompt (ISL) and output (OSL)
lengths, prefix reuse, sessions and concurrency. TRACE is a trace file in any format the simulator reads;
DIR a directory (or prefix path) of Dynamo request-trace segments (DYN_REQUEST_TRACE); with --prometheus,
Dynamo's frontend metrics over the last --window. --synthesize FILE writes a replayable Mooncake trace that
matches the profile (deterministic for --seed).`;

export const PROFILE_FLAGS: FlagSpec[] = [
  {
    name: 'prometheus',
    path: null,
    kind: 'string',
    metavar: 'URL',
    help: 'read Dynamo frontend metrics from this Prometheus',
  },
  {
    name: 'window',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'the last part of the traffic (e.g. 30m): back from the newest request, or from now with --prometheus (default: the whole trace; 30m with --prometheus)',
  },
  {
    name: 'selector',
    path: null,
    kind: 'string',
    metavar: 'K=V,...',
    help: 'Prometheus label matchers, e.g. model=qwen/qwen3-8b,dynamo_namespace=prod-llm',
  },
  {
    name: 'step',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'rate-curve resolution (default 10s for traces, 15s for Prometheus)',
  },
  {
    name: 'bearer-token-file',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'file holding a bearer token for Prometheus',
  },
  {
    name: 'ca-file',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'PEM CA bundle for an https Prometheus',
  },
  {
    name: 'trace-format',
    path: null,
    kind: 'string',
    metavar: 'NAME',
    help: 'force a trace format (dynamo, mooncake, azure)',
  },
  {
    name: 'trace-block-size',
    path: null,
    kind: 'int',
    help: 'tokens per hash id of a Mooncake trace (default 512)',
  },
  { name: 'json', path: null, kind: 'boolean', help: 'print the profile as JSON' },
  {
    name: 'out',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'also write the profile JSON to FILE (a drift baseline)',
  },
  {
    name: 'synthesize',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'write a Mooncake trace matching the profile',
  },
  { name: 'seed', path: null, kind: 'int', help: 'seed of --synthesize (default 1)' },
  {
    name: 'block-size',
    path: null,
    kind: 'int',
    help: 'tokens per hash id of the synthesised trace (default 64)',
  },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

const MAX_TOKEN_FILE_BYTES = 16 * 1024;

async function smallFile(flag: string, path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  const st = await stat(path).catch(() => null);
  if (!st?.isFile()) throw new UsageError(`${flag} ${path}: not a readable file`);
  if (st.size > MAX_TOKEN_FILE_BYTES * 64) throw new UsageError(`${flag} ${path}: larger than 1 MiB`);
  return (await readFile(path, 'utf8')).trim();
}

const n = (v: number | undefined | null) => (v === undefined || v === null ? '-' : formatNumber(v));
const pct = (v: number | null | undefined) =>
  v === null || v === undefined ? 'unknown' : `${(v * 100).toFixed(1)} %`;

/** The rate curve as one line of block characters (at most `width` of them). */
export function sparkline(counts: readonly number[], width = 60): string {
  if (counts.length === 0) return '';
  const bins = rebin(counts, Math.ceil(counts.length / width));
  const max = Math.max(...bins);
  const marks = '▁▂▃▄▅▆▇█';
  return bins.map((c) => (max > 0 ? marks[Math.min(7, Math.floor((c / max) * 7.999))] : marks[0])).join('');
}

function distRow(name: string, d: Distribution | undefined, unit: string): (string | number)[] {
  if (!d) return [name, '-', '-', '-', '-', unit];
  return [name, n(d.mean), n(d.p50), n(d.p90), n(d.p99), unit];
}

export function renderProfile(p: WorkloadProfile): string {
  const when =
    p.window.start_ms > 1e12
      ? `${new Date(p.window.start_ms).toISOString()} to ${new Date(p.window.end_ms).toISOString()}`
      : `${formatNumber(p.window.start_ms / 1000)} s to ${formatNumber(p.window.end_ms / 1000)} s of the trace`;
  const lines = [
    `source       ${p.source.name}${p.source.format ? ` (${p.source.format})` : ''}`,
    `window       ${when}`,
    `requests     ${formatNumber(p.requests)} in ${formatNumber(p.duration_s)} s: ${formatNumber(p.request_rate_rps)} req/s (peak ${formatNumber(p.rate.peak_rps)} over ${p.rate.step_s} s)`,
    `rate         ${sparkline(p.rate.counts)}  burstiness ${formatNumber(p.rate.burstiness)} (Allan factor at ${p.rate.step_s} s; 1 = Poisson)`,
    `prefix reuse ${pct(p.prefix_reuse.share)}${p.prefix_reuse.basis === 'none' ? '' : ` (${p.prefix_reuse.basis === 'blocks' ? 'prompt blocks seen earlier' : 'cached tokens over input tokens'})`}`,
    `sessions     ${p.sessions ? `${formatNumber(p.sessions.sessions)}, ${formatNumber(p.sessions.turns_mean)} turns each, ${pct(p.sessions.multi_turn_share)} of requests in multi-turn sessions` : 'unknown'}`,
  ];
  if (p.concurrency)
    lines.push(
      `in flight    mean ${formatNumber(p.concurrency.mean)}, peak ${formatNumber(p.concurrency.peak)}`,
    );
  const rows = [
    distRow('input tokens', p.input_tokens, 'tokens'),
    distRow('output tokens', p.output_tokens, 'tokens'),
  ];
  const o = p.observed;
  if (o) {
    if (o.ttft_ms) rows.push(distRow('TTFT (observed)', o.ttft_ms, 'ms'));
    if (o.itl_ms) rows.push(distRow('ITL (observed)', o.itl_ms, 'ms'));
    if (o.e2e_ms) rows.push(distRow('end to end (observed)', o.e2e_ms, 'ms'));
  }
  const table = renderTable(['', 'mean', 'p50', 'p90', 'p99', ''], rows, [1, 2, 3, 4]);
  const extra: string[] = [];
  if (o?.output_tokens_per_s !== undefined)
    extra.push(`output       ${formatNumber(o.output_tokens_per_s)} tokens/s (observed)`);
  if (o?.queued_mean !== undefined)
    extra.push(`queued       ${formatNumber(o.queued_mean)} requests on average at the frontend`);
  if (o?.cached_token_share !== undefined)
    extra.push(`cache hits   ${pct(o.cached_token_share)} of prompt tokens (observed)`);
  const notes = p.notes.map((x) => `note: ${x}`);
  return `${[...lines, '', table, ...(extra.length > 0 ? ['', ...extra] : []), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n')}\n`;
}

export async function profileCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const flags = parseFlags(argv, PROFILE_FLAGS);
  const v = flags.values;
  if (v.get('help')) {
    out.write(renderHelp(USAGE, PROFILE_FLAGS));
    return 0;
  }
  const prom = v.get('prometheus') as string | undefined;
  const pos = flags.positionals;
  if (pos.length > 1) throw new UsageError(`one source at a time (got ${pos.join(', ')})`);
  if (prom !== undefined && pos.length > 0)
    throw new UsageError(`--prometheus ${prom} conflicts with ${pos[0]}: give one source`);
  if (prom === undefined && pos.length === 0)
    throw new UsageError('give a trace, a request-trace directory or --prometheus URL');
  const traceOnly = ['trace-format', 'trace-block-size'].filter((f) => v.has(f));
  if (prom !== undefined && traceOnly.length > 0)
    throw new UsageError(`--${traceOnly[0]} applies to traces, not --prometheus`);
  const promOnly = ['selector', 'bearer-token-file', 'ca-file'].filter((f) => v.has(f));
  if (prom === undefined && promOnly.length > 0)
    throw new UsageError(`--${promOnly[0]} applies to --prometheus only`);
  const synth = v.get('synthesize') as string | undefined;
  if (synth === undefined && (v.has('seed') || v.has('block-size')))
    throw new UsageError(`--${v.has('seed') ? 'seed' : 'block-size'} applies to --synthesize only`);
  const outFile = v.get('out') as string | undefined;
  const inputs = pos.slice();
  if (outFile) await checkOutputPath('--out', outFile, inputs);
  if (synth) await checkOutputPath('--synthesize', synth, inputs);
  if (outFile && synth && outFile === synth)
    throw new UsageError('--out and --synthesize name the same file');
  const windowMs = durationFlag('--window', v.get('window') as string | undefined, 7 * 24 * 3_600_000);
  const stepMs = durationFlag('--step', v.get('step') as string | undefined, 24 * 3_600_000);
  const blockSize = v.get('trace-block-size') as number | undefined;
  if (blockSize !== undefined && !(blockSize >= 1 && blockSize <= 65_536))
    throw new UsageError('--trace-block-size: must be in [1, 65536]');

  const profile =
    prom !== undefined
      ? await profileOfPrometheus({
          url: prom,
          selector: parseSelector(v.get('selector') as string | undefined),
          windowMs: windowMs ?? 30 * 60_000,
          stepS: stepMs !== undefined ? stepMs / 1000 : undefined,
          bearerToken: await smallFile(
            '--bearer-token-file',
            v.get('bearer-token-file') as string | undefined,
          ),
          ca: await smallFile('--ca-file', v.get('ca-file') as string | undefined),
        })
      : await profileOfPath(pos[0], {
          windowMs,
          stepS: stepMs !== undefined ? stepMs / 1000 : undefined,
          traceFormat: v.get('trace-format') as string | undefined,
          traceBlockSize: blockSize,
        });

  if (outFile) await writeJson(outFile, profile);
  let synthNote = '';
  if (synth) {
    const bs = (v.get('block-size') as number | undefined) ?? 64;
    if (!(bs >= 1 && bs <= 65_536)) throw new UsageError('--block-size: must be in [1, 65536]');
    try {
      const r = synthesize(profile, { seed: (v.get('seed') as number | undefined) ?? 1, blockSize: bs });
      await writeMooncake(r.workload, synth);
      const a = r.achieved;
      synthNote = `synthesised ${formatNumber(a.requests)} requests to ${synth} (block size ${bs}): mean input ${formatNumber(a.inputMean)}, mean output ${formatNumber(a.outputMean)}, prefix reuse ${pct(a.prefixReuse)}\n`;
    } catch (e) {
      if (e instanceof SynthesisError) throw new UsageError(e.message);
      if ((e as NodeJS.ErrnoException).code)
        throw new UsageError(`--synthesize ${synth}: cannot write (${(e as Error).message})`);
      throw e;
    }
  }
  if (v.get('json')) out.write(`${JSON.stringify(profile, null, 2)}\n`);
  else out.write(renderProfile(profile) + (synthNote ? `\n${synthNote}` : ''));
  return 0;
}
