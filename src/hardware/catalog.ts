import type { z } from 'zod';
import { BUILTIN_GPUS, type Gpu, GpuSpecSchema, toGpu } from './gpus.ts';
import { BUILTIN_MODELS, type ModelSpec, ModelSpecSchema } from './models.ts';

/** A catalog problem the user can fix (unknown name, invalid entry); the message names the field. */
export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogError';
  }
}

/** Lookup key: case-insensitive, `_` and `-` and spaces alike. */
function key(s: string): string {
  return s
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, '-');
}

/** Name variants tried for a model: as given, without the organisation, without common checkpoint suffixes. */
function modelKeys(s: string): string[] {
  const k = key(s);
  const out = [k];
  const bare = k.includes('/') ? k.slice(k.lastIndexOf('/') + 1) : k;
  out.push(bare);
  let stripped = bare.replace(/^meta-/, '');
  for (;;) {
    const next = stripped.replace(/-(instruct|chat|base|fp8|fp4|nvfp4|mxfp4|awq|gptq|hf)$/, '');
    if (next === stripped) break;
    stripped = next;
  }
  out.push(stripped);
  return out;
}

function issueMessage(where: string, error: z.ZodError, prefix: (string | number)[] = []): string {
  const issue = error.issues[0];
  const path = [...prefix, ...issue.path].map(String).join('.');
  return `${where}: field '${path}': ${issue.message}`;
}

/** The GPUs and models the simulator knows: the built-in entries plus any added from files. */
export class Catalog {
  private readonly gpuById = new Map<string, Gpu>();
  private readonly gpuIndex = new Map<string, string>();
  private readonly modelById = new Map<string, ModelSpec>();
  private readonly modelIndex = new Map<string, string>();

  static builtin(): Catalog {
    const c = new Catalog();
    for (const g of BUILTIN_GPUS) c.addGpu(toGpu(GpuSpecSchema.parse(g.spec), g.tables ?? null));
    for (const m of BUILTIN_MODELS) c.addModel(ModelSpecSchema.parse(m));
    return c;
  }

  get gpus(): Gpu[] {
    return [...this.gpuById.values()];
  }
  get models(): ModelSpec[] {
    return [...this.modelById.values()];
  }

  /** Adds (or replaces, by id) a GPU. User GPUs never inherit measured tables. */
  addGpu(gpu: Gpu): void {
    this.gpuById.set(gpu.id, gpu);
    for (const n of [gpu.id, gpu.spec.name, ...gpu.spec.aliases, ...gpu.spec.productLabels]) {
      this.gpuIndex.set(key(n), gpu.id);
    }
  }

  addModel(m: ModelSpec): void {
    this.modelById.set(m.id, m);
    for (const n of [m.id, m.name, ...(m.hfId ? [m.hfId] : []), ...m.aliases]) {
      for (const k of modelKeys(n)) if (!this.modelIndex.has(k) || k === key(n)) this.modelIndex.set(k, m.id);
    }
  }

  /** Finds a GPU by id, name, alias or `nvidia.com/gpu.product` label value; undefined when unknown. */
  findGpu(name: string): Gpu | undefined {
    let k = key(name);
    if (!this.gpuIndex.has(k)) k = k.replace(/-shared$/, ''); // GPU feature discovery's time-slicing suffix
    const id = this.gpuIndex.get(k);
    return id === undefined ? undefined : this.gpuById.get(id);
  }

  gpu(name: string): Gpu {
    const g = this.findGpu(name);
    if (!g) throw new CatalogError(`unknown GPU '${name}' (known: ${[...this.gpuById.keys()].join(', ')})`);
    return g;
  }

  /** Finds a model by id, name, Hugging Face id or alias (organisation and -Instruct/-FP8 suffixes optional). */
  findModel(name: string): ModelSpec | undefined {
    for (const k of modelKeys(name)) {
      const id = this.modelIndex.get(k);
      if (id !== undefined) return this.modelById.get(id);
    }
    return undefined;
  }

  model(name: string): ModelSpec {
    const m = this.findModel(name);
    if (!m) {
      throw new CatalogError(`unknown model '${name}' (known: ${[...this.modelById.keys()].join(', ')})`);
    }
    return m;
  }

  /**
   * Adds the GPUs of a parsed catalog file: a list, or a mapping with a `gpus` list. `where` names the file in
   * errors, e.g. "gpus.yaml: field 'gpus.0.hbmGiB': must be positive".
   */
  addGpusFrom(where: string, doc: unknown): Gpu[] {
    const { list, prefix } = entries(where, doc, 'gpus');
    const seen = new Set<string>();
    const out: Gpu[] = [];
    list.forEach((raw, i) => {
      const r = GpuSpecSchema.safeParse(raw);
      if (!r.success) throw new CatalogError(issueMessage(where, r.error, [...prefix, i]));
      if (seen.has(r.data.id)) {
        throw new CatalogError(
          `${where}: field '${[...prefix, i, 'id'].join('.')}': duplicate id '${r.data.id}'`,
        );
      }
      seen.add(r.data.id);
      out.push(toGpu(r.data));
    });
    for (const g of out) this.addGpu(g);
    return out;
  }

  addModelsFrom(where: string, doc: unknown): ModelSpec[] {
    const { list, prefix } = entries(where, doc, 'models');
    const seen = new Set<string>();
    const out: ModelSpec[] = [];
    list.forEach((raw, i) => {
      const r = ModelSpecSchema.safeParse(raw);
      if (!r.success) throw new CatalogError(issueMessage(where, r.error, [...prefix, i]));
      if (seen.has(r.data.id)) {
        throw new CatalogError(
          `${where}: field '${[...prefix, i, 'id'].join('.')}': duplicate id '${r.data.id}'`,
        );
      }
      seen.add(r.data.id);
      out.push(r.data);
    });
    for (const m of out) this.addModel(m);
    return out;
  }
}

function entries(where: string, doc: unknown, field: string): { list: unknown[]; prefix: string[] } {
  if (Array.isArray(doc)) return { list: doc, prefix: [] };
  if (typeof doc === 'object' && doc !== null) {
    const extra = Object.keys(doc).filter((k) => k !== field);
    if (extra.length > 0) throw new CatalogError(`${where}: unknown key '${extra[0]}' (expected '${field}')`);
    const list = (doc as Record<string, unknown>)[field];
    if (Array.isArray(list)) return { list, prefix: [field] };
    throw new CatalogError(`${where}: field '${field}': expected a list`);
  }
  throw new CatalogError(`${where}: expected a list of ${field} or a mapping with a '${field}' list`);
}
