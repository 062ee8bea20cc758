import { Catalog, CatalogError } from '../hardware/catalog.ts';
import { GpuSpecSchema } from '../hardware/gpus.ts';
import { ModelSpecSchema } from '../hardware/models.ts';
import { withShape } from './config-files.ts';
import { UsageError } from './errors.ts';
import { readStructuredFile } from './files.ts';

export const GPUS_EXAMPLE = 'config/examples/gpus.yaml';
export const MODELS_EXAMPLE = 'config/examples/models.yaml';

/** The built-in catalog plus GPUs and models from the given files; file problems are usage errors. */
export async function loadCatalog(files: { gpusFile?: string; modelsFile?: string }): Promise<Catalog> {
  const catalog = Catalog.builtin();
  const docs = {
    ...(files.gpusFile
      ? { gpus: { where: files.gpusFile, doc: await readStructuredFile(files.gpusFile) } }
      : {}),
    ...(files.modelsFile
      ? { models: { where: files.modelsFile, doc: await readStructuredFile(files.modelsFile) } }
      : {}),
  };
  addCatalogFiles(catalog, docs);
  return catalog;
}

/**
 * Adds parsed GPU and model files to a catalog. A file that does not match says where, and what one entry
 * takes (with the commented example to copy from).
 */
export function addCatalogFiles(
  catalog: Catalog,
  docs: { gpus?: { where: string; doc: unknown }; models?: { where: string; doc: unknown } },
): void {
  for (const [kind, schema, example] of [
    ['gpus', GpuSpecSchema, GPUS_EXAMPLE],
    ['models', ModelSpecSchema, MODELS_EXAMPLE],
  ] as const) {
    const file = docs[kind];
    if (!file) continue;
    try {
      if (kind === 'gpus') catalog.addGpusFrom(file.where, file.doc);
      else catalog.addModelsFrom(file.where, file.doc);
    } catch (e) {
      if (!(e instanceof CatalogError)) throw e;
      const entryShape = withShape(e.message, schema, [], example).split('\n');
      // withShape says "at the top level": here that level is one entry of the list.
      if (entryShape.length > 1)
        entryShape[1] = `expected for each of ${kind} (commented example: ${example}):`;
      throw new UsageError(entryShape.join('\n'));
    }
  }
}
