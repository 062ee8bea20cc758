import type { GpuInventory } from '../api/index.ts';
import { Catalog } from '../hardware/catalog.ts';
import type { KubeClient } from './kube/client.ts';
import { type KubeList, NODES, PODS, pathOf } from './kube/resources.ts';

/**
 * GPU inventory from Nodes (GPU Feature Discovery labels and allocatable `nvidia.com/gpu`) minus what
 * scheduled pods request, keyed by the simulator catalog's GPU ids. Products the catalog does not know are
 * reported, not fatal.
 */

/** The simulator's GPU catalog identifies each GPU by its `nvidia.com/gpu.product` label values. */
const catalog = Catalog.builtin();

/** Strips the `-SHARED` (time-slicing/MPS) suffix; MIG slices stay distinct products. */
export function normalizeProduct(label: string): string {
  return label.replace(/-SHARED$/, '');
}

/** Catalog id of a GPU product label; undefined for MIG slices and products the catalog does not know. */
export function gpuTypeForProduct(product: string): string | undefined {
  if (/-MIG-/.test(product)) return undefined;
  return catalog.findGpu(normalizeProduct(product))?.id;
}

export interface NodeLike {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { unschedulable?: boolean; taints?: { key: string; effect: string }[] };
  status?: {
    allocatable?: Record<string, string>;
    capacity?: Record<string, string>;
    conditions?: { type: string; status: string }[];
  };
}

export interface PodLike {
  spec?: {
    nodeName?: string;
    containers?: { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }[];
    initContainers?: { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }[];
  };
  status?: { phase?: string };
}

const GPU = 'nvidia.com/gpu';

function int(v: string | undefined): number {
  const n = v === undefined ? Number.NaN : Number.parseInt(v, 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** GPUs a pod holds: the larger of the summed app containers and the largest init container. */
export function podGpus(pod: PodLike): number {
  const one = (c: { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }) =>
    int(c.resources?.requests?.[GPU] ?? c.resources?.limits?.[GPU]);
  const app = (pod.spec?.containers ?? []).reduce((s, c) => s + one(c), 0);
  const init = Math.max(0, ...(pod.spec?.initContainers ?? []).map(one));
  return Math.max(app, init);
}

function schedulable(node: NodeLike): boolean {
  if (node.spec?.unschedulable) return false;
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  // Nodes without conditions (e.g. created by hand in tests) count as ready.
  if (ready && ready.status !== 'True') return false;
  return !(node.spec?.taints ?? []).some((t) => t.effect === 'NoSchedule' && t.key !== GPU);
}

/** Physical GPUs of a node: the count label, else allocatable divided by the sharing replicas. */
function physicalGpus(node: NodeLike): number {
  const labels = node.metadata.labels ?? {};
  const allocatable = int(node.status?.allocatable?.[GPU]);
  const counted = int(labels['nvidia.com/gpu.count']);
  const replicas = Math.max(1, int(labels['nvidia.com/gpu.replicas']) || 1);
  const shared = (labels['nvidia.com/gpu.sharing-strategy'] ?? 'none') !== 'none';
  const fromAllocatable = shared ? Math.floor(allocatable / replicas) : allocatable;
  return counted > 0 ? Math.min(counted, fromAllocatable || counted) : fromAllocatable;
}

export function computeInventory(
  nodes: NodeLike[],
  pods: PodLike[],
  now = new Date(),
): Omit<GpuInventory, 'budget'> {
  const used = new Map<string, number>();
  for (const p of pods) {
    const node = p.spec?.nodeName;
    if (!node || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    used.set(node, (used.get(node) ?? 0) + podGpus(p));
  }
  const types = new Map<string, GpuInventory['types'][number]>();
  const unknown = new Map<string, GpuInventory['unknownProducts'][number]>();
  for (const n of nodes) {
    const labels = n.metadata.labels ?? {};
    const product = labels['nvidia.com/gpu.product'];
    const gpus = physicalGpus(n);
    if (gpus === 0 || !schedulable(n)) continue;
    const type = product ? gpuTypeForProduct(product) : undefined;
    if (!product || !type) {
      const name = product ? normalizeProduct(product) : 'unlabelled';
      const u = unknown.get(name) ?? { product: name, nodes: 0, gpus: 0 };
      u.nodes++;
      u.gpus += gpus;
      unknown.set(name, u);
      continue;
    }
    const requested = Math.min(gpus, used.get(n.metadata.name) ?? 0);
    const t = types.get(type) ?? {
      gpuType: type,
      product: normalizeProduct(product),
      nodes: 0,
      gpus: 0,
      requested: 0,
      available: 0,
    };
    t.nodes++;
    t.gpus += gpus;
    t.requested += requested;
    t.available += gpus - requested;
    types.set(type, t);
  }
  const byName = <T>(m: Map<string, T>) =>
    [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
  return {
    observedTime: now.toISOString().replace(/\.\d+Z$/, 'Z'),
    types: byName(types),
    unknownProducts: byName(unknown),
  };
}

/**
 * GPUs a proposal may use per type. Auto: what is free plus what the target already holds of its type (at
 * most what pods of that type request), capped by `gpus` entries when given. Explicit: the `gpus` map. `maxTotal` caps each type.
 */
export function effectiveBudget(
  inventory: Omit<GpuInventory, 'budget'>,
  budget: { mode: 'Auto' | 'Explicit'; gpus?: Record<string, number>; maxTotalGPUs?: number },
  held: { gpuType: string; gpus: number },
): Record<string, number> {
  const out: Record<string, number> = {};
  if (budget.mode === 'Explicit') {
    for (const [k, v] of Object.entries(budget.gpus ?? {})) out[k] = v;
  } else {
    for (const t of inventory.types) out[t.gpuType] = t.available;
    const requested = inventory.types.find((t) => t.gpuType === held.gpuType)?.requested ?? 0;
    if (held.gpus > 0 && requested > 0) out[held.gpuType] += Math.min(held.gpus, requested);
    if (budget.gpus) {
      for (const k of Object.keys(out))
        if (budget.gpus[k] !== undefined) out[k] = Math.min(out[k], budget.gpus[k]);
    }
  }
  if (budget.maxTotalGPUs !== undefined)
    for (const k of Object.keys(out)) out[k] = Math.min(out[k], budget.maxTotalGPUs);
  for (const k of Object.keys(out)) if (out[k] <= 0) delete out[k];
  return out;
}

/**
 * Every item of a list, page by page, keeping only what `keep` returns: a large cluster's Pods are never held
 * whole (a page of 500 at a time, and only the fields the inventory reads).
 */
export async function listPaged<T, U>(
  client: KubeClient,
  path: string,
  query: Record<string, string>,
  keep: (item: T) => U | undefined,
  pageSize = 500,
): Promise<U[]> {
  const out: U[] = [];
  let cont: string | undefined;
  do {
    const page = await client.get<KubeList<T>>(path, { ...query, limit: pageSize, continue: cont });
    for (const item of page.items) {
      const k = keep(item);
      if (k !== undefined) out.push(k);
    }
    cont = page.metadata.continue || undefined;
  } while (cont);
  return out;
}

/** The parts of a Pod the inventory reads: its node, phase and GPU requests (no env, no volumes). */
export function podGpuView(p: PodLike): PodLike | undefined {
  const gpus = podGpus(p);
  if (!p.spec?.nodeName || gpus === 0) return undefined;
  return {
    spec: { nodeName: p.spec.nodeName, containers: [{ resources: { requests: { [GPU]: String(gpus) } } }] },
    status: { phase: p.status?.phase },
  };
}

/** Lists GPU nodes and the pods holding GPUs, and computes the inventory. */
export async function listGpuInventory(client: KubeClient, now: Date): Promise<Omit<GpuInventory, 'budget'>> {
  const nodes = await listPaged<NodeLike, NodeLike>(client, pathOf(NODES), {}, (n) => n);
  // GFD labels nodes nvidia.com/gpu.present; nodes without GFD may only advertise allocatable GPUs.
  const gpuNodes = nodes.filter((n) => {
    const l = n.metadata.labels ?? {};
    return (
      l['nvidia.com/gpu.product'] || l['nvidia.com/gpu.present'] || n.status?.allocatable?.['nvidia.com/gpu']
    );
  });
  const pods = await listPaged<PodLike, PodLike>(
    client,
    pathOf(PODS),
    { fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed' },
    podGpuView,
  );
  return computeInventory(gpuNodes, pods, now);
}
