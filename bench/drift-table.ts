/**
 * The drift-score table of docs/telemetry.md: scores of the two halves of each public trace (one workload,
 * two windows) and of different workloads, on every dimension, plus the same at the size of the bundled
 * samples (their halves are a few minutes long), so the thresholds can be checked against both.
 *
 * Reads the Mooncake traces from ../shared/data/traces and the Azure LLM inference traces (2023,
 * Azure/AzurePublicDataset `data/AzureLLMInferenceTrace_{code,conv}.csv`, CC-BY 4.0) from --azure DIR when
 * given. Usage: npm run bench:drift-table [-- --azure DIR]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { renderTable } from '../src/cli/table.ts';
import { DRIFT_DIMENSIONS } from '../src/telemetry/drift/scores.ts';
import { DEFAULT_THRESHOLDS, driftVerdict } from '../src/telemetry/drift/verdict.ts';
import {
  halfOfWindow,
  profileFromRecorded,
  readRecordedWindow,
} from '../src/telemetry/profile/from-trace.ts';
import type { WorkloadProfile } from '../src/telemetry/profile/profile.ts';

const { values } = parseArgs({ options: { azure: { type: 'string' }, shared: { type: 'string' } } });
const shared =
  values.shared ?? ['../shared/data/traces', '../../shared/data/traces'].find((d) => existsSync(d)) ?? '';
const fixtures = new URL('../test/fixtures/traces/', import.meta.url).pathname;

interface Set3 {
  whole: WorkloadProfile;
  a: WorkloadProfile;
  b: WorkloadProfile;
}
async function load(path: string): Promise<Set3> {
  const rec = await readRecordedWindow(path);
  return {
    whole: profileFromRecorded(rec, { name: path }),
    a: profileFromRecorded(halfOfWindow(rec, false), { name: path }),
    b: profileFromRecorded(halfOfWindow(rec, true), { name: path }),
  };
}

async function table(title: string, files: Record<string, string>): Promise<void> {
  const sets: Record<string, Set3> = {};
  for (const [k, f] of Object.entries(files)) if (existsSync(f)) sets[k] = await load(f);
  const rows: (string | number)[][] = [];
  const row = (label: string, x: WorkloadProfile, y: WorkloadProfile) => {
    const v = driftVerdict(x, y);
    rows.push([
      label,
      `${x.requests} / ${y.requests}`,
      ...DRIFT_DIMENSIONS.map((d) => (v.scores[d] === null ? '-' : (v.scores[d] as number).toFixed(2))),
      v.level.toFixed(2),
    ]);
  };
  for (const [k, s] of Object.entries(sets)) row(`${k}: first half vs second half`, s.a, s.b);
  const names = Object.keys(sets);
  for (let i = 0; i < names.length; i++)
    for (let j = i + 1; j < names.length; j++)
      row(`${names[i]} vs ${names[j]}`, sets[names[i]].whole, sets[names[j]].whole);
  console.log(`\n${title}\n`);
  console.log(renderTable(['pair', 'requests', ...DRIFT_DIMENSIONS, 'level'], rows, [2, 3, 4, 5, 6, 7, 8]));
}

console.log(`thresholds: ${DRIFT_DIMENSIONS.map((d) => `${d} ${DEFAULT_THRESHOLDS[d]}`).join(', ')}`);
await table('Whole traces (halves of about 30 minutes; Mooncake synthetic: 8.5 minutes)', {
  'mooncake-conversation': `${shared}/mooncake_conversation.jsonl`,
  'mooncake-synthetic': `${shared}/mooncake_synthetic.jsonl`,
  ...(values.azure
    ? {
        'azure-code': `${values.azure}/AzureLLMInferenceTrace_code.csv`,
        'azure-conv': `${values.azure}/AzureLLMInferenceTrace_conv.csv`,
      }
    : {}),
});
await table('Bundled samples (halves of 1 to 6 minutes)', {
  'mooncake-conversation': `${fixtures}conversation-sample.jsonl`,
  'mooncake-synthetic': `${fixtures}synthetic-sample.jsonl`,
  'azure-code': `${fixtures}azure-code-sample.csv`,
  'azure-conv': `${fixtures}azure-conv-sample.csv`,
});
