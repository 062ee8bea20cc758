/**
 * Writes test/fixtures/timing/e2e-sample.json: a small, spread-out sample of the measured end-to-end vLLM
 * benchmarks the hardware timing model is validated on (AIConfigurator silicon_e2e, Apache-2.0), for the
 * unit test that keeps the model's error from growing. Cheap rows only (concurrency <= 64, OSL <= 1024),
 * up to three per (GPU, model, dtype), spread over TP and ISL; rows bench:timing leaves out as infeasible are
 * skipped.
 *
 * Usage: node hack/extract-e2e-sample.ts [--data ../shared/data/timing]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Catalog } from '../src/hardware/catalog.ts';
import { caseFromRow, infeasibleReason, rowsFromTable } from '../src/hardware/validate.ts';

const { values } = parseArgs({ options: { data: { type: 'string', default: '../shared/data/timing' } } });
const doc = JSON.parse(readFileSync(`${values.data}/silicon_e2e.json`, 'utf8'));
const rows = rowsFromTable(doc);
const catalog = Catalog.builtin();
const groups = new Map<string, number[]>();
rows.forEach((r, i) => {
  const c = caseFromRow(r, catalog);
  if (!('case' in c) || c.case.concurrency > 64 || c.case.osl > 1024) return;
  if (infeasibleReason(c.case, catalog) !== undefined) return; // as bench:timing leaves them out
  const k = `${c.case.gpu} ${c.case.model} ${c.case.dtype}`;
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k)!.push(i);
});
const picked: number[] = [];
for (const [, idx] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
  // Distinct setups, spread evenly through the group's rows.
  const seen = new Set<string>();
  const distinct = idx.filter((i) => {
    const r = rows[i];
    const k = JSON.stringify([r.tp_size, r.isl, r.osl, r.batch_size, r.moe_ep_size]);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const n = Math.min(3, distinct.length);
  for (let j = 0; j < n; j++) picked.push(distinct[Math.floor(((j + 0.5) * distinct.length) / n)]);
}
const out = {
  attribution: doc.attribution,
  source: doc.source,
  note: 'Sample of silicon_e2e.json rows (vLLM, aggregated) written by hack/extract-e2e-sample.ts.',
  columns: doc.columns,
  rows: picked.map((i) => doc.rows[i]),
};
writeFileSync('test/fixtures/timing/e2e-sample.json', `${JSON.stringify(out, null, 1)}\n`);
console.log(`${picked.length} rows from ${groups.size} groups`);
