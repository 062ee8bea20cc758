// Writes crds/*.yaml (and the development CRDs) from the zod schemas in src/api/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from '../src/api/index.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [file, text] of await renderCrdFiles()) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
  console.log(`wrote ${file}`);
}
