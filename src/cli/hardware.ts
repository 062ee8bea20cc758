import { Catalog, CatalogError } from '../hardware/catalog.ts';
import { UsageError } from './errors.ts';
import { readStructuredFile } from './files.ts';

/** The built-in catalog plus GPUs and models from the given files; file problems are usage errors. */
export async function loadCatalog(files: { gpusFile?: string; modelsFile?: string }): Promise<Catalog> {
  const catalog = Catalog.builtin();
  try {
    if (files.gpusFile) catalog.addGpusFrom(files.gpusFile, await readStructuredFile(files.gpusFile));
    if (files.modelsFile) catalog.addModelsFrom(files.modelsFile, await readStructuredFile(files.modelsFile));
  } catch (e) {
    if (e instanceof CatalogError) throw new UsageError(e.message);
    throw e;
  }
  return catalog;
}
