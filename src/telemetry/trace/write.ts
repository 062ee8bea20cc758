import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Workload } from '../../sim/workload/workload.ts';

/**
 * Writes a workload as Mooncake JSONL (`timestamp`, `input_length`, `output_length`, `hash_ids`; sessions
 * with `session_id` and `delay`), so that a synthesised trace replays with every command that reads traces.
 * Streams row by row with back-pressure: a million-request trace never sits in memory as text.
 */
export async function writeMooncake(w: Workload, path: string): Promise<void> {
  const out = createWriteStream(path);
  const failed = once(out, 'error').then(([e]) => {
    throw e;
  });
  failed.catch(() => {});
  for (let i = 0; i < w.size; i++) {
    const row: Record<string, unknown> = {};
    if (!Number.isNaN(w.arrivalMs[i])) row.timestamp = Math.round(w.arrivalMs[i] * 1000) / 1000;
    if (w.session[i] >= 0) row.session_id = String(w.session[i]);
    if (!Number.isNaN(w.delayMs[i])) row.delay = w.delayMs[i];
    row.input_length = w.inputLength[i];
    row.output_length = w.outputLength[i];
    row.hash_ids = Array.from(w.hashIds.subarray(w.hashOffsets[i], w.hashOffsets[i + 1]));
    if (!out.write(`${JSON.stringify(row)}\n`)) await Promise.race([once(out, 'drain'), failed]);
  }
  out.end();
  await Promise.race([once(out, 'finish'), failed]);
}
