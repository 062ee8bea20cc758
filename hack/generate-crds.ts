// Writes crds/*.yaml (and the development CRDs) from the zod schemas in src/api/, and the Helm chart's
// copies: its CRDs (charts/servetune/crds/), its RBAC rules (from config/rbac/) and the review admission
// policy (config/admission/).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from '../src/api/index.ts';
import {
  CHART_RBAC_FILE,
  CHART_REVIEW_POLICY_FILE,
  REVIEW_POLICY_FILE,
  renderChartRbac,
} from './chart-rbac.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = await renderCrdFiles();
files.set(CHART_RBAC_FILE, renderChartRbac(root));
files.set(CHART_REVIEW_POLICY_FILE, readFileSync(join(root, REVIEW_POLICY_FILE), 'utf8'));
for (const [file, text] of files) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
  console.log(`wrote ${file}`);
}
