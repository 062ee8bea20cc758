/**
 * Traces the fidelity comparison derives from the recorded ones, for features no public trace exercises at
 * this size: an agentic trace (Dynamo's agentic_mooncake, version 2) built from the Mooncake conversation
 * trace's sessions. Deterministic: the same input gives the same file, so both simulators read identical rows.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Row {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

/**
 * Sessions of a Mooncake trace: a row continues the earlier row it shares the longest hash-id prefix with
 * (two ids at least), when that prefix covers all of that row's ids but perhaps its last (the rule
 * hack/reference/record-agentic-golden.py uses for the golden vectors). Returns each row's parent or -1.
 */
function sessionParents(rows: readonly Row[]): Int32Array {
  // A trie of hash-id prefixes: node -> the latest row with that prefix.
  const child = new Map<string, number>();
  const lastRow: number[] = [-1];
  const parent = new Int32Array(rows.length).fill(-1);
  for (let i = 0; i < rows.length; i++) {
    const h = rows[i].hash_ids;
    // The deepest node of h's prefix already in the trie, and its depth.
    let node = 0;
    let depth = 0;
    const path: number[] = [];
    for (; depth < h.length; depth++) {
      const next = child.get(`${node},${h[depth]}`);
      if (next === undefined) break;
      node = next;
      path.push(node);
    }
    if (depth >= 2) {
      const p = lastRow[node];
      if (depth >= rows[p].hash_ids.length - 1) parent[i] = p;
    }
    // Every prefix of h now ends at row i.
    for (const n of path) lastRow[n] = i;
    for (let k = depth; k < h.length; k++) {
      const id = lastRow.length;
      lastRow.push(i);
      child.set(`${node},${h[k]}`, id);
      node = id;
    }
  }
  return parent;
}

/**
 * agentic_mooncake version 2 from a Mooncake trace: a session's first row starts at its timestamp
 * (`not_before_ms`), each later row waits for the row it continues to complete, plus the gap between their
 * timestamps.
 */
function agenticFromMooncake(rows: readonly Row[]): string {
  const parent = sessionParents(rows);
  const root = new Int32Array(rows.length);
  const lines = [
    JSON.stringify({
      schema: 'dynamo.agentic_mooncake',
      version: 2,
      block_size: 512,
      hash_id_scope: 'local',
      source: { format: 'servetune-fidelity', digest: 'conversation-sessions-v1' },
    }),
  ];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const p = parent[i];
    root[i] = p < 0 ? i : root[p];
    const row: Record<string, unknown> = {
      request_id: `r${i}`,
      play_id: `s${root[i]}`,
      session_id: `s${root[i]}`,
      model: 'm',
      input_length: r.input_length,
      output_length: r.output_length,
      hash_ids: r.hash_ids,
      not_before_ms: p < 0 ? r.timestamp : 0,
    };
    if (p >= 0)
      row.dependencies = [
        {
          request_id: `r${p}`,
          trigger: 'completion',
          delay_ms: Math.max(0, r.timestamp - rows[p].timestamp),
          relation: 'sequence',
        },
      ];
    lines.push(JSON.stringify(row));
  }
  return `${lines.join('\n')}\n`;
}

export const DERIVED = {
  agenticConv: 'agentic_conversation_v2.jsonl',
} as const;

/** Writes the derived traces into `dir` from the recorded ones in `traceDir`. */
export function writeDerivedTraces(traceDir: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const conv = readFileSync(join(traceDir, 'mooncake_conversation.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Row);
  writeFileSync(join(dir, DERIVED.agenticConv), agenticFromMooncake(conv));
}
