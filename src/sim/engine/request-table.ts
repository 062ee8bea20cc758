import type { BlockLayout } from '../workload/blocks.ts';
import type { Workload } from '../workload/workload.ts';

/** Lifecycle of a request in a simulation. */
export const RequestStatus = {
  Pending: 0,
  Waiting: 1,
  Running: 2,
  Done: 3,
  Rejected: 4,
  /** Prefill done on a prefill worker; KV on its way to a decode worker. */
  Transferring: 5,
} as const;

/**
 * Per-request simulation state, column-wise. A request lives on one engine at a time, so one table serves
 * every engine of a cluster; engines index it by request id (the workload index).
 */
export class RequestTable {
  readonly size: number;
  readonly promptLen: Int32Array;
  readonly outputLen: Int32Array;
  /** Tokens whose KV has been computed (a decoding request has one uncomputed, just-sampled token). */
  readonly computed: Int32Array;
  readonly generated: Int32Array;
  /** KV block copies held; their pool slots are `slots[slotOffset[r] .. slotOffset[r] + allocBlocks[r])`. */
  readonly allocBlocks: Int32Array;
  readonly slotOffset: Int32Array;
  readonly slots: Int32Array;
  readonly preemptions: Int32Array;
  readonly status: Uint8Array;
  readonly engine: Int32Array;
  /** Pass bookkeeping so a preemption can undo work already scheduled for its victim in the same pass. */
  readonly passStamp: Int32Array;
  readonly passTokens: Int32Array;
  readonly passPromptTokens: Int32Array;
  readonly passPromptBefore: Int32Array;
  /** 1 when the request's prompt was computed on a prefill worker and its KV transferred here. */
  readonly remote: Uint8Array;

  readonly workload: Workload;
  readonly layout: BlockLayout;
  constructor(workload: Workload, layout: BlockLayout) {
    this.workload = workload;
    this.layout = layout;
    const n = workload.size;
    this.size = n;
    this.promptLen = workload.inputLength;
    this.outputLen = workload.outputLength;
    this.computed = new Int32Array(n);
    this.generated = new Int32Array(n);
    this.allocBlocks = new Int32Array(n);
    this.slotOffset = new Int32Array(n + 1);
    let total = 0;
    for (let r = 0; r < n; r++) {
      this.slotOffset[r] = total;
      total += Math.ceil((workload.inputLength[r] + workload.outputLength[r]) / layout.blockSize) + 1;
    }
    this.slotOffset[n] = total;
    this.slots = new Int32Array(total);
    this.preemptions = new Int32Array(n);
    this.status = new Uint8Array(n);
    this.engine = new Int32Array(n).fill(-1);
    this.passStamp = new Int32Array(n).fill(-1);
    this.passTokens = new Int32Array(n);
    this.passPromptTokens = new Int32Array(n);
    this.passPromptBefore = new Int32Array(n);
    this.remote = new Uint8Array(n);
  }

  seqLen(r: number): number {
    return this.promptLen[r] + this.generated[r];
  }

  /** Key of block j of request r (see BlockLayout). */
  blockKey(r: number, j: number): number {
    const f = this.layout.promptBlocks[r];
    return j < f ? this.layout.keys[this.layout.offsets[r] + j] : this.layout.uniqueBase[r] + (j - f);
  }
}
