import { DRIFT_DIMENSIONS, type DriftDimension } from '../telemetry/drift/scores.ts';
import { DEFAULT_THRESHOLDS, describeMoved, driftVerdict } from '../telemetry/drift/verdict.ts';
import { UsageError } from './errors.ts';
import { type FlagSpec, parseFlags, renderHelp } from './flags.ts';
import { formatNumber, renderTable } from './table.ts';
import { durationFlag, profileOfPath } from './workload-source.ts';

const USAGE = `Usage: servetune drift BASELINE CURRENT [--json] [options]

Compares the traffic of CURRENT with BASELINE, dimension by dimension (request rate and burstiness, prompt
and output length distributions, prefix reuse, sessions), and says whether it drifted: some dimension at or
above its threshold. Either side is a trace file, a request-trace directory, or a profile JSON written by
'servetune profile --out' (for Prometheus: profile it to a file first).`;

export const DRIFT_FLAGS: FlagSpec[] = [
  {
    name: 'window',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'profile only the last part of each trace side (back from its newest request)',
  },
  {
    name: 'step',
    path: null,
    kind: 'string',
    metavar: 'DURATION',
    help: 'rate-curve resolution of trace sides (default 10s)',
  },
  {
    name: 'threshold',
    path: null,
    kind: 'string',
    metavar: 'DIM=V,...',
    help: `override thresholds (${DRIFT_DIMENSIONS.map((d) => `${d}=${DEFAULT_THRESHOLDS[d]}`).join(', ')})`,
  },
  {
    name: 'trace-format',
    path: null,
    kind: 'string',
    metavar: 'NAME',
    help: 'force a trace format for both sides',
  },
  {
    name: 'trace-block-size',
    path: null,
    kind: 'int',
    help: 'tokens per hash id of Mooncake sides (default 512)',
  },
  { name: 'json', path: null, kind: 'boolean', help: 'print scores and verdict as JSON' },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

function parseThresholds(text: string | undefined): Partial<Record<DriftDimension, number>> {
  const out: Partial<Record<DriftDimension, number>> = {};
  if (text === undefined) return out;
  for (const part of text.split(',')) {
    const [k, raw] = part.split('=').map((s) => s.trim());
    if (!(DRIFT_DIMENSIONS as readonly string[]).includes(k))
      throw new UsageError(`--threshold: unknown dimension '${k}' (known: ${DRIFT_DIMENSIONS.join(', ')})`);
    const val = Number(raw);
    if (raw === undefined || raw === '' || !(val > 0 && val <= 100))
      throw new UsageError(`--threshold: ${k} needs a number in (0, 100], got '${raw ?? ''}'`);
    out[k as DriftDimension] = val;
  }
  return out;
}

/** JSON has no infinity: an unbounded score prints as null. */
const finiteOrNull = (v: number | null) => (v === null || !Number.isFinite(v) ? null : v);

export async function driftCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const flags = parseFlags(argv, DRIFT_FLAGS);
  const v = flags.values;
  if (v.get('help')) {
    out.write(renderHelp(USAGE, DRIFT_FLAGS));
    return 0;
  }
  const pos = flags.positionals;
  if (pos.length !== 2) throw new UsageError(`give BASELINE and CURRENT (got ${pos.length} sources)`);
  const thresholds = parseThresholds(v.get('threshold') as string | undefined);
  const windowMs = durationFlag('--window', v.get('window') as string | undefined, 7 * 24 * 3_600_000);
  const stepMs = durationFlag('--step', v.get('step') as string | undefined, 24 * 3_600_000);
  const opts = {
    windowMs,
    stepS: stepMs !== undefined ? stepMs / 1000 : undefined,
    traceFormat: v.get('trace-format') as string | undefined,
    traceBlockSize: v.get('trace-block-size') as number | undefined,
  };
  const baseline = await profileOfPath(pos[0], opts);
  const current = await profileOfPath(pos[1], opts);
  const verdict = driftVerdict(baseline, current, thresholds);
  if (v.get('json')) {
    const scores = Object.fromEntries(DRIFT_DIMENSIONS.map((d) => [d, finiteOrNull(verdict.scores[d])]));
    out.write(
      `${JSON.stringify(
        {
          drifted: verdict.drifted,
          level: finiteOrNull(verdict.level),
          moved: verdict.moved,
          scores,
          thresholds: verdict.thresholds,
          ks: verdict.ks,
          details: verdict.details.map((d) => ({
            ...d,
            baseline: finiteOrNull(d.baseline),
            current: finiteOrNull(d.current),
          })),
          baseline: { source: baseline.source, requests: baseline.requests, duration_s: baseline.duration_s },
          current: { source: current.source, requests: current.requests, duration_s: current.duration_s },
          notes: verdict.notes,
        },
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  const rows = DRIFT_DIMENSIONS.map((d) => {
    const det = verdict.details.find((x) => x.dimension === d);
    const s = verdict.scores[d];
    return [
      d,
      det?.baseline === null || det?.baseline === undefined ? '-' : formatNumber(det.baseline),
      det?.current === null || det?.current === undefined ? '-' : formatNumber(det.current),
      det?.unit ?? '',
      s === null ? '-' : formatNumber(s),
      String(verdict.thresholds[d]),
      s === null ? 'not compared' : s >= verdict.thresholds[d] ? 'MOVED' : '',
    ];
  });
  const head = `baseline ${baseline.source.name} (${formatNumber(baseline.requests)} requests, ${formatNumber(baseline.duration_s)} s)\ncurrent  ${current.source.name} (${formatNumber(current.requests)} requests, ${formatNumber(current.duration_s)} s)\n\n`;
  const table = renderTable(
    ['dimension', 'baseline', 'current', 'unit', 'score', 'threshold', ''],
    rows,
    [1, 2, 4, 5],
  );
  const moved = describeMoved(verdict);
  const tail = verdict.drifted
    ? `\ndrifted: ${moved.join('; ')}\n`
    : `\nno drift (largest score at ${(verdict.level * 100).toFixed(0)} % of its threshold)\n`;
  const notes = verdict.notes.map((x) => `note: ${x}\n`).join('');
  out.write(`${head}${table}\n${tail}${notes ? `\n${notes}` : ''}`);
  return 0;
}
