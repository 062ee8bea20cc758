/**
 * Reading one hour of a busy deployment's request traces into a workload profile and a replayable trace.
 *
 * The traces: Dynamo request-trace segments (`DYN_REQUEST_TRACE`, gzip JSONL, one member per ~1 MiB flush,
 * segments rolled at 256 MiB as Dynamo does) written once with the twin's writer format from the Mooncake
 * conversation trace, replayed `--copies` times within the hour with disjoint prefixes (default 9: 108,279
 * requests, about 30 per second, 12,000 prompt tokens on average at `--block-size` 64 tokens per hash, so
 * about 190 hashes per record). They are cached under the OS temporary directory.
 *
 * Measured in a fresh process, so its peak RSS is the reading's: reading the segments (one parser, every
 * record validated) into a workload, the profile, and a synthesised trace from the profile (the path taken
 * when only Prometheus exists), each timed, then the peak RSS. Run it alone (2 cores are shared): figures
 * are one run each; pass --repeat N for the median of N.
 * Usage: npm run bench:profile [-- --copies 9 --block-size 64 --repeat 3 --trace FILE]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { profileFromRecorded, readRecordedWindow } from '../src/telemetry/profile/from-trace.ts';
import { synthesize } from '../src/telemetry/profile/synthesize.ts';
import { readTrace } from '../src/telemetry/trace/index.ts';
import { requestEndRecord, segmentName } from '../src/twin/request-trace.ts';

const { values } = parseArgs({
  options: {
    trace: { type: 'string', default: '../shared/data/traces/mooncake_conversation.jsonl' },
    copies: { type: 'string', default: '9' },
    'block-size': { type: 'string', default: '64' },
    repeat: { type: 'string', default: '1' },
    measure: { type: 'string' },
  },
});
const copies = Number(values.copies);
const blockSize = Number(values['block-size']);
const HOUR_MS = 3_600_000;

async function measure(dir: string): Promise<void> {
  const t0 = performance.now();
  const rec = await readRecordedWindow(dir, { lookbackMs: HOUR_MS });
  const t1 = performance.now();
  const profile = profileFromRecorded(rec, { name: dir });
  const t2 = performance.now();
  const synth = synthesize(profile, { seed: 1, blockSize });
  const t3 = performance.now();
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(
    JSON.stringify({
      requests: rec.workload.size,
      segments: rec.summary.files,
      megabytes: rec.summary.bytes / 2 ** 20,
      readS: (t1 - t0) / 1000,
      profileS: (t2 - t1) / 1000,
      synthesizeS: (t3 - t2) / 1000,
      synthesized: synth.workload.size,
      peakRssMb: rss,
      requestsPerS: rec.workload.size / ((t1 - t0) / 1000),
    }),
  );
}

/** Writes the segments (once): `copies` passes of the trace squeezed into the hour, disjoint prefixes. */
async function generate(dir: string): Promise<void> {
  const { workload: w } = await readTrace(values.trace);
  const span = Math.max(...Array.from(w.arrivalMs).filter((a) => !Number.isNaN(a)));
  const start = Date.now() - HOUR_MS;
  const order: { at: number; i: number; copy: number }[] = [];
  for (let c = 0; c < copies; c++)
    for (let i = 0; i < w.size; i++)
      order.push({ at: ((w.arrivalMs[i] + c * span) / (copies * span)) * HOUR_MS * 0.999, i, copy: c });
  order.sort((a, b) => a.at - b.at);
  mkdirSync(dir, { recursive: true });
  let segment = 0;
  let segBytes = 0;
  let members: Buffer[] = [];
  let batch: string[] = [];
  let batchBytes = 0;
  const flushBatch = () => {
    if (batch.length > 0) members.push(gzipSync(batch.join('')));
    batch = [];
    batchBytes = 0;
  };
  const flushSegment = () => {
    flushBatch();
    if (members.length > 0)
      writeFileSync(join(dir, segmentName('dynamo-request-trace', segment++)), Buffer.concat(members));
    members = [];
    segBytes = 0;
  };
  let n = 0;
  for (const { at, i, copy } of order) {
    const per = w.traceBlockSize / blockSize;
    const ids: number[] = [];
    const input = w.inputLength[i];
    for (let k = w.hashOffsets[i]; k < w.hashOffsets[i + 1]; k++)
      for (let j = 0; j < per && ids.length < Math.ceil(input / blockSize); j++)
        ids.push((copy * 1e7 + w.hashIds[k]) * per + j);
    const received = Math.round(start + at);
    const line = `${JSON.stringify({
      timestamp: Math.round(at),
      event: requestEndRecord({
        requestId: `req-${n++}`,
        model: 'qwen/qwen3-8b',
        inputTokens: input,
        outputTokens: w.outputLength[i],
        cachedTokens: 0,
        receivedUnixMs: received,
        ttftMs: 80,
        totalTimeMs: 80 + 12 * w.outputLength[i],
        avgItlMs: 12,
        traceBlockSize: blockSize,
        blockIds: ids,
      }),
    })}\n`;
    const bytes = Buffer.byteLength(line);
    if (segBytes + bytes > 256 * 2 ** 20) flushSegment();
    batch.push(line);
    batchBytes += bytes;
    segBytes += bytes;
    if (batchBytes >= 2 ** 20) flushBatch();
  }
  flushSegment();
}

if (values.measure) {
  await measure(values.measure);
} else {
  if (!existsSync(values.trace)) {
    console.error(`bench:profile: trace not found: ${values.trace} (the benchmark reads ../shared/data)`);
    process.exit(2);
  }
  const dir = join(tmpdir(), `servetune-bench-profile-${copies}x-b${blockSize}`);
  if (!existsSync(dir) || readdirSync(dir).length === 0) {
    console.error(`writing request-trace segments to ${dir} ...`);
    await generate(dir);
  }
  const files = readdirSync(dir);
  const gz = files.reduce((s, f) => s + statSync(join(dir, f)).size, 0);
  console.log(`request traces: ${files.length} segments, ${(gz / 2 ** 20).toFixed(1)} MiB gzip, in ${dir}`);
  const runs: Record<string, number>[] = [];
  for (let r = 0; r < Number(values.repeat); r++) {
    // A fresh process per run: its peak RSS is the reading's alone.
    const p = spawnSync(
      process.execPath,
      [
        ...process.execArgv,
        new URL(import.meta.url).pathname,
        '--measure',
        dir,
        '--block-size',
        String(blockSize),
      ],
      {
        encoding: 'utf8',
      },
    );
    if (p.status !== 0) {
      console.error(p.stderr);
      process.exit(1);
    }
    runs.push(JSON.parse(p.stdout.trim().split('\n').pop() as string));
  }
  const median = (k: string) => {
    const v = runs.map((x) => x[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const r0 = runs[0];
  console.log(
    `${r0.requests.toLocaleString('en-US')} requests (${r0.megabytes.toFixed(0)} MB of JSON in ${r0.segments} segments): ` +
      `read ${median('readS').toFixed(2)} s (${Math.round(median('requestsPerS')).toLocaleString('en-US')} requests/s), ` +
      `profile ${median('profileS').toFixed(2)} s, synthesised trace (${r0.synthesized.toLocaleString('en-US')} requests) ${median('synthesizeS').toFixed(2)} s, ` +
      `peak RSS ${median('peakRssMb').toFixed(0)} MB (median of ${runs.length})`,
  );
  console.log(
    JSON.stringify({
      ...r0,
      readS: median('readS'),
      profileS: median('profileS'),
      synthesizeS: median('synthesizeS'),
      peakRssMb: median('peakRssMb'),
    }),
  );
}
