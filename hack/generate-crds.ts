// Writes crds/*.yaml (and the development CRDs) from the zod schemas in src/api/, and the Helm chart's
// copies: its CRDs (charts/servetune/crds/) and its RBAC rules (from config/rbac/).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from '../src/api/index.ts';
import { CHART_RBAC_FILE, renderChartRbac } from './chart-rbac.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = await renderCrdFiles();
files.set(CHART_RBAC_FILE, renderChartRbac(root));
for (const [file, text] of files) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
  console.log(`wrote ${file}`);
}
