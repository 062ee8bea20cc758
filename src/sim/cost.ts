/**
 * What a run will cost before it starts: memory from its inputs (workers, KV pools, requests held in memory),
 * and a time at a stated speed. Rough by design (within a factor of about two), enough to refuse a run that
 * cannot fit in memory with a message saying why, and to say up front when a run will be long. The figures per
 * block and per request are the sizes of the simulator's own arrays (see the modules named).
 */

/** One pool of workers as the estimate sees it. */
export interface PoolShape {
  workers: number;
  /** KV blocks (pages) per worker (times data-parallel ranks). */
  blocks: number;
  engine: 'vllm' | 'sglang' | 'trtllm';
  /** Host and disk tier blocks per worker. */
  lowerTierBlocks: number;
}

export interface RunShape {
  pools: PoolShape[];
  /** Requests the run replays. */
  requests: number;
  /** Mean prompt and output tokens. */
  meanInput: number;
  meanOutput: number;
  blockSize: number;
  traceBlockSize: number;
  /** The requests are generated into memory first (synthetic), rather than streamed from a trace. */
  inMemory: boolean;
  /** Requests alive at once, when bounded (a closed loop's concurrency), else unknown (0). */
  concurrency: number;
}

export interface CostEstimate {
  bytes: number;
  parts: { workers: number; requests: number; records: number; keys: number };
}

/** Per block of a worker's KV pool: a block pool's six Int32 columns (block-pool.ts), a radix cache's nodes. */
const BYTES_PER_BLOCK: Record<PoolShape['engine'], number> = { vllm: 28, trtllm: 28, sglang: 64 };
/** Per lower-tier block: a key LRU's key, links and table (key-lru.ts). */
const BYTES_PER_TIER_BLOCK = 20;
/** Per request kept in the result columns (records.ts): 6 doubles, 7 ints, a status byte. */
const BYTES_PER_RECORD = 90;
/** Per request of a workload built in memory (workload.ts): 9 columns, plus the builder's arrays. */
const BYTES_PER_REQUEST = 120;
/** Per content id of a workload in memory: the id, the builder's copy, the interned key (key-space.ts). */
const BYTES_PER_CONTENT = 40;
/** Per prefix key kept: the key space's index, a direct key table per engine (for small clusters). */
const BYTES_PER_KEY = 8;

export function estimateRun(shape: RunShape): CostEstimate {
  let workers = 0;
  let blocks = 0;
  for (const p of shape.pools) {
    workers += p.workers * (p.blocks * BYTES_PER_BLOCK[p.engine] + p.lowerTierBlocks * BYTES_PER_TIER_BLOCK);
    blocks += p.workers * p.blocks;
  }
  const contentsPerRequest = Math.ceil(shape.meanInput / shape.traceBlockSize);
  const requests = shape.inMemory
    ? shape.requests * (BYTES_PER_REQUEST + contentsPerRequest * BYTES_PER_CONTENT)
    : 0;
  const records = shape.requests * BYTES_PER_RECORD;
  // Keys: what the caches hold (a streamed run compacts to that), or every prompt block of a workload.
  const ratio = Math.max(1, shape.traceBlockSize / shape.blockSize);
  const keys = shape.inMemory
    ? shape.requests * contentsPerRequest * ratio * BYTES_PER_KEY
    : Math.max(blocks, 1 << 21) * 2 * BYTES_PER_KEY;
  return { bytes: workers + requests + records + keys, parts: { workers, requests, records, keys } };
}

/** Requests per second the simulator sustains on one core (bench:scale, block 512, 8 workers). */
export const REFERENCE_REQUESTS_PER_S = 40_000;
