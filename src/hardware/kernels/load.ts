import { readFileSync } from 'node:fs';
import { decodeKernelBundle, KernelBundleSchema, type KernelTables } from './tables.ts';

const cache = new Map<string, KernelTables>();

/**
 * Loads the bundled measured kernel tables of a GPU (src/hardware/data/kernels/<id>.json), once per process.
 * Reading and decoding one GPU's tables takes a few milliseconds.
 */
export function loadKernelTables(id: string): KernelTables {
  let t = cache.get(id);
  if (!t) {
    if (!/^[a-z0-9_]+$/.test(id)) throw new Error(`bad kernel table id '${id}'`);
    const url = new URL(`../data/kernels/${id}.json`, import.meta.url);
    const doc = KernelBundleSchema.parse(JSON.parse(readFileSync(url, 'utf8')));
    t = decodeKernelBundle(doc);
    cache.set(id, t);
  }
  return t;
}
