import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runSimulation } from '../../src/config/run.ts';
import { type SimulationConfig, SimulationConfigSchema } from '../../src/config/schema.ts';
import { RequestTable } from '../../src/sim/engine/request-table.ts';
import { KeySpace } from '../../src/sim/kv/key-space.ts';
import { generateSynthetic, type SyntheticSpec } from '../../src/sim/workload/synthetic.ts';
import type { Workload } from '../../src/sim/workload/workload.ts';
import { parseTrace } from '../../src/telemetry/trace/index.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

const cache = new Map<string, Workload>();
/** The bundled conversation sample (first `rows` rows). */
export function conversationSample(rows = 2000): Workload {
  const key = `conv:${rows}`;
  let w = cache.get(key);
  if (!w) {
    const text = readFileSync(`${FIXTURES}traces/conversation-sample.jsonl`, 'utf8')
      .split('\n')
      .slice(0, rows)
      .join('\n');
    w = parseTrace(text, { source: 'conversation-sample.jsonl' }).workload;
    cache.set(key, w);
  }
  return w;
}

/** A request table holding every request of a workload, request i in slot i (unit tests of routers, caches). */
export function requestTable(w: Workload, blockSize: number): RequestTable {
  const table = new RequestTable(new KeySpace(blockSize, w.traceBlockSize), w.size);
  for (let i = 0; i < w.size; i++) {
    const r = table.admit({
      inputLength: w.inputLength[i],
      outputLength: w.outputLength[i],
      hashIds: w.hashIds,
      hashFrom: w.hashOffsets[i],
      source: i,
    });
    if (r !== i) throw new Error('requestTable: slots out of order');
  }
  return table;
}

export function mooncake(rows: object[]): Workload {
  return parseTrace(rows.map((r) => JSON.stringify(r)).join('\n'), { source: 'inline' }).workload;
}

export function synthetic(spec: Partial<SyntheticSpec> = {}): Workload {
  return generateSynthetic({
    sessions: 200,
    inputTokens: { mean: 2000, stddev: 600 },
    outputTokens: { mean: 120, stddev: 60 },
    arrival: { kind: 'poisson', ratePerS: 20 },
    sharedPrefixRatio: 0.5,
    prefixGroups: 8,
    blockSize: 64,
    ...spec,
  });
}

/** A validated config with a placeholder workload source (the workload is passed separately). */
export function config(overrides: Record<string, unknown> = {}): SimulationConfig {
  return SimulationConfigSchema.parse({ workload: { trace: 'inline' }, ...overrides });
}

export function run(workload: Workload, overrides: Record<string, unknown> = {}) {
  return runSimulation(config(overrides), workload);
}
