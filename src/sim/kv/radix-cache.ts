import type { RequestTable } from '../engine/request-table.ts';
import { DenseIntMap, IntMap, type IntMapLike } from './int-map.ts';

/**
 * SGLang's radix prefix cache over a page pool, at page granularity (one page = `page_size` tokens = one
 * engine block of the `BlockLayout`).
 *
 * Nodes are compressed edges: runs of pages along one token path. A page is named by its chained block key
 * (equal keys <=> equal content from the start of the sequence), so the tree needs no child tables: the child
 * of node n that starts with key k is simply the node holding k, and a node's pages are pages
 * `start .. start + len` of any request through it (`rep`, the key region of such a request, which the node
 * keeps alive after the request ends). The cached set is prefix-closed, so a match is a binary search over a
 * request's page keys.
 *
 * `lock` counts the running requests whose path ends at or below a node (a lock walks to the root); locked
 * nodes are never evicted. Unlocked leaves wait in an LRU ordered by last access (ties by node id, which is
 * allocated last-freed-first like the reference's slot map); eviction trims the oldest leaf's tail pages,
 * whole leaves first. `evictablePages` counts every unlocked node, internal ones included: an unlocked subtree
 * is evictable leaf by leaf.
 */
export class RadixCache {
  readonly totalPages: number;
  /** Pages in no node and held by no request. */
  freePages: number;
  evictablePages = 0;
  protectedPages = 0;
  /** Pages evicted since creation. */
  evictedPages = 0;
  /** Called when a page key enters (stored) or leaves the tree. */
  onKeyEvent: ((key: number, stored: boolean) => void) | null = null;

  /** Node of the last `matchAndLock`, and pages of the last `insert` that were already cached. */
  duplicates = 0;

  static readonly ROOT = 0;

  private parent: Int32Array;
  private start: Int32Array;
  private len: Int32Array;
  private rep: Int32Array;
  private lockRef: Int32Array;
  private children: Int32Array;
  private time: Float64Array;
  private heapPos: Int32Array;
  private heap: Int32Array;
  private heapSize = 0;
  private freeIds: Int32Array;
  private freeTop = 0;
  private nextId = 1;
  private clock = 0;
  private readonly keyNode: IntMapLike;
  private readonly req: RequestTable;

  constructor(totalPages: number, req: RequestTable) {
    if (!Number.isInteger(totalPages) || totalPages < 1)
      throw new RangeError('KV pool must hold at least one page');
    this.totalPages = totalPages;
    this.freePages = totalPages;
    this.req = req;
    // Page key -> node (at most one entry per cached page): an array over the keys, or a hash table.
    this.keyNode = req.keys.indexDirectly ? new DenseIntMap(req.keys.capacity) : new IntMap(totalPages);
    const cap = Math.min(totalPages + 2, 1024);
    this.parent = new Int32Array(cap);
    this.start = new Int32Array(cap);
    this.len = new Int32Array(cap);
    this.rep = new Int32Array(cap);
    this.lockRef = new Int32Array(cap);
    this.children = new Int32Array(cap);
    this.time = new Float64Array(cap);
    this.heapPos = new Int32Array(cap).fill(-1);
    this.heap = new Int32Array(cap);
    this.freeIds = new Int32Array(cap);
    this.parent[0] = -1;
  }

  /** Pages cached in the tree. */
  get cachedPages(): number {
    return this.evictablePages + this.protectedPages;
  }
  /** Nodes in the tree (root excluded). */
  get nodeCount(): number {
    return this.nextId - 1 - this.freeTop;
  }
  lockOf(node: number): number {
    return this.lockRef[node];
  }
  parentOf(node: number): number {
    return this.parent[node];
  }
  pagesOf(node: number): number {
    return this.len[node];
  }
  /** Path length (pages) from the root through the end of node. */
  depthOf(node: number): number {
    return node === RadixCache.ROOT ? 0 : this.start[node] + this.len[node];
  }
  hasKey(key: number): boolean {
    return this.keyNode.get(key) >= 0;
  }
  nodeOfKey(key: number): number {
    return this.keyNode.get(key);
  }

  /** Leading pages of r's sequence (at most maxPages) that are cached. Read-only. */
  matchPages(r: number, maxPages: number): number {
    const req = this.req;
    const map = this.keyNode;
    if (maxPages <= 0 || map.get(req.blockKey(r, 0)) < 0) return 0;
    let lo = 1;
    let hi = maxPages;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (map.get(req.blockKey(r, mid - 1)) >= 0) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Matches r's leading pages (at most maxPages), splitting the node the match ends inside, touches the fully
   * matched nodes and locks the path. Returns the node the match ends at (the root when nothing matched).
   */
  matchAndLock(r: number, maxPages: number): number {
    const m = this.matchPages(r, maxPages);
    if (m === 0) return RadixCache.ROOT;
    const now = ++this.clock;
    let node = this.keyNode.get(this.req.blockKey(r, m - 1));
    const off = m - 1 - this.start[node];
    let p = node;
    if (off < this.len[node] - 1) {
      // A match ending inside an edge splits it; the new prefix node keeps the edge's timestamp.
      node = this.split(node, off + 1);
      p = this.parent[node];
    }
    for (; p !== RadixCache.ROOT; p = this.parent[p]) this.touch(p, now);
    this.lock(node);
    return node;
  }

  /** Locks node and its ancestors (they stop being evictable). */
  lock(node: number): void {
    for (let n = node; n !== RadixCache.ROOT; n = this.parent[n]) {
      if (this.lockRef[n]++ === 0) {
        if (this.heapPos[n] >= 0) this.heapRemove(n);
        this.evictablePages -= this.len[n];
        this.protectedPages += this.len[n];
      }
    }
  }

  unlock(node: number): void {
    for (let n = node; n !== RadixCache.ROOT; n = this.parent[n]) {
      if (this.lockRef[n] === 0) throw new Error('radix cache: unlock of an unlocked node');
      if (--this.lockRef[n] === 0) {
        this.protectedPages -= this.len[n];
        this.evictablePages += this.len[n];
        if (this.children[n] === 0) this.heapPush(n);
      }
    }
  }

  /**
   * Inserts pages [fromPage, toPage) of r below `from` (whose path covers exactly pages [0, fromPage)). Pages
   * that are already cached are walked (and counted in `duplicates`; the caller frees its copies); a leaf
   * nobody else holds is extended in place. Returns the node the inserted path ends at.
   */
  insert(r: number, from: number, fromPage: number, toPage: number): number {
    this.duplicates = 0;
    if (toPage <= fromPage) return from;
    const req = this.req;
    const now = ++this.clock;
    for (let p = from; p !== RadixCache.ROOT; p = this.parent[p]) this.touch(p, now);
    let cur = from;
    let off = fromPage;
    for (;;) {
      if (off >= toPage) return cur;
      if (
        cur !== RadixCache.ROOT &&
        this.children[cur] === 0 &&
        (this.lockRef[cur] === 0 || (cur === from && this.lockRef[cur] === 1))
      ) {
        this.extendLeaf(cur, r, off, toPage, now);
        return cur;
      }
      const child = this.keyNode.get(req.blockKey(r, off));
      if (child < 0) return this.createChild(cur, r, off, toPage);
      const clen = this.len[child];
      let common = 1;
      while (
        common < clen &&
        off + common < toPage &&
        this.keyNode.get(req.blockKey(r, off + common)) === child
      )
        common++;
      this.duplicates += common;
      off += common;
      if (common === clen) {
        cur = child;
        this.touch(cur, now);
        continue;
      }
      const inter = this.split(child, common);
      return off < toPage ? this.createChild(inter, r, off, toPage) : inter;
    }
  }

  /** Evicts at least `pages` pages (when that many are evictable): LRU leaves, trimming the last one's tail. */
  evict(pages: number): number {
    let evicted = 0;
    while (evicted < pages && this.heapSize > 0) {
      const victim = this.heap[0];
      this.heapRemove(victim);
      const len = this.len[victim];
      const n = Math.min(pages - evicted, len);
      this.dropKeys(victim, len - n, len);
      this.evictablePages -= n;
      this.freePages += n;
      evicted += n;
      if (n < len) {
        this.len[victim] = len - n;
        this.heapPush(victim);
        continue;
      }
      const p = this.parent[victim];
      this.freeNode(victim);
      if (--this.children[p] === 0 && p !== RadixCache.ROOT && this.lockRef[p] === 0) this.heapPush(p);
    }
    this.evictedPages += evicted;
    return evicted;
  }

  /** Keys below `n` may be looked up from now on (see KeySpace.onCapacity). */
  ensureKeyCapacity(n: number): void {
    if (this.keyNode instanceof DenseIntMap) this.keyNode.ensureKeyCapacity(n);
  }

  /** Marks every cached page key (see KeyHolder; the nodes' key regions are the request table's). */
  markKeys(live: Uint8Array): void {
    this.keyNode.markKeys(live);
  }

  remapKeys(map: Int32Array): void {
    this.keyNode.remapKeys(map);
  }

  /** Checks the bookkeeping against a full scan (tests). */
  check(): void {
    let evictable = 0;
    let protectedPages = 0;
    let leaves = 0;
    const live = new Set<number>();
    for (let n = 1; n < this.nextId; n++) live.add(n);
    for (let i = 0; i < this.freeTop; i++) live.delete(this.freeIds[i]);
    const childCount = new Map<number, number>();
    for (const n of live) childCount.set(this.parent[n], (childCount.get(this.parent[n]) ?? 0) + 1);
    for (const n of live) {
      const locks = this.lockRef[n];
      if (locks > 0) protectedPages += this.len[n];
      else evictable += this.len[n];
      if ((childCount.get(n) ?? 0) !== this.children[n]) throw new Error(`node ${n}: child count drifted`);
      const p = this.parent[n];
      if (p !== RadixCache.ROOT && this.lockRef[p] < locks) throw new Error(`node ${n}: parent less locked`);
      if (p !== RadixCache.ROOT && this.start[n] !== this.start[p] + this.len[p])
        throw new Error(`node ${n}: not contiguous with its parent`);
      const isLeaf = this.children[n] === 0 && locks === 0;
      if (isLeaf !== this.heapPos[n] >= 0) throw new Error(`node ${n}: LRU membership drifted`);
      if (isLeaf) leaves++;
      for (let i = 0; i < this.len[n]; i++)
        if (this.keyNode.get(this.req.regionKey(this.rep[n], this.start[n] + i)) !== n)
          throw new Error(`node ${n}: key index drifted`);
    }
    if (evictable !== this.evictablePages || protectedPages !== this.protectedPages)
      throw new Error('radix cache: size accounting drifted');
    if (leaves !== this.heapSize) throw new Error('radix cache: LRU size drifted');
    if (this.keyNode.size !== evictable + protectedPages)
      throw new Error('radix cache: key index size drifted');
  }

  /** Evictable leaves, oldest first (tests). */
  lruOrder(): number[] {
    const ids = Array.from(this.heap.subarray(0, this.heapSize));
    return ids.sort((a, b) => this.time[a] - this.time[b] || a - b);
  }

  // -------------------------------------------------------------------------------------------------------

  private touch(n: number, now: number): void {
    this.time[n] = now;
    const i = this.heapPos[n];
    if (i >= 0) this.siftDown(this.siftUp(i));
  }

  private extendLeaf(n: number, r: number, fromPage: number, toPage: number, now: number): void {
    const req = this.req;
    // r's path runs through n, so r's keys name n's pages too: r can stand for the whole edge.
    this.setRep(n, req.region[r]);
    for (let j = fromPage; j < toPage; j++) this.addKey(req.blockKey(r, j), n);
    const add = toPage - fromPage;
    this.len[n] += add;
    if (this.lockRef[n] === 0) this.evictablePages += add;
    else this.protectedPages += add;
    this.touch(n, now);
  }

  private createChild(parent: number, r: number, fromPage: number, toPage: number): number {
    const n = this.allocNode();
    this.parent[n] = parent;
    this.start[n] = fromPage;
    this.len[n] = toPage - fromPage;
    this.rep[n] = this.req.region[r];
    this.req.retainRegion(this.rep[n]);
    this.lockRef[n] = 0;
    this.children[n] = 0;
    this.time[n] = ++this.clock;
    for (let j = fromPage; j < toPage; j++) this.addKey(this.req.blockKey(r, j), n);
    if (this.heapPos[parent] >= 0) this.heapRemove(parent);
    this.children[parent]++;
    this.heapPush(n);
    this.evictablePages += toPage - fromPage;
    return n;
  }

  /** Splits node n after `at` pages: a new node takes the prefix and becomes n's parent. */
  private split(n: number, at: number): number {
    const inter = this.allocNode();
    const s = this.start[n];
    this.parent[inter] = this.parent[n];
    this.start[inter] = s;
    this.len[inter] = at;
    this.rep[inter] = this.rep[n];
    this.req.retainRegion(this.rep[inter]);
    this.lockRef[inter] = this.lockRef[n];
    this.children[inter] = 1;
    this.time[inter] = this.time[n];
    this.parent[n] = inter;
    this.start[n] = s + at;
    this.len[n] -= at;
    const rep = this.rep[n];
    for (let j = s; j < s + at; j++) this.keyNode.set(this.req.regionKey(rep, j), inter);
    return inter;
  }

  private addKey(key: number, n: number): void {
    this.keyNode.set(key, n);
    if (this.onKeyEvent !== null) this.onKeyEvent(key, true);
  }

  private dropKeys(n: number, from: number, to: number): void {
    const rep = this.rep[n];
    const s = this.start[n];
    for (let i = from; i < to; i++) {
      const key = this.req.regionKey(rep, s + i);
      this.keyNode.delete(key);
      if (this.onKeyEvent !== null) this.onKeyEvent(key, false);
    }
  }

  private allocNode(): number {
    if (this.freeTop > 0) return this.freeIds[--this.freeTop];
    const n = this.nextId++;
    if (n >= this.parent.length) this.grow();
    return n;
  }

  private freeNode(n: number): void {
    this.req.releaseRegion(this.rep[n]);
    this.freeIds[this.freeTop++] = n;
  }

  /** Node n's pages are named through key region g from now on. */
  private setRep(n: number, g: number): void {
    if (this.rep[n] === g) return;
    this.req.retainRegion(g);
    this.req.releaseRegion(this.rep[n]);
    this.rep[n] = g;
  }

  private grow(): void {
    const cap = this.parent.length * 2;
    const g32 = (a: Int32Array, fill = 0): Int32Array => {
      const b = new Int32Array(cap).fill(fill);
      b.set(a);
      return b;
    };
    this.parent = g32(this.parent);
    this.start = g32(this.start);
    this.len = g32(this.len);
    this.rep = g32(this.rep);
    this.lockRef = g32(this.lockRef);
    this.children = g32(this.children);
    this.heapPos = g32(this.heapPos, -1);
    this.heap = g32(this.heap);
    this.freeIds = g32(this.freeIds);
    const t = new Float64Array(cap);
    t.set(this.time);
    this.time = t;
  }

  // Indexed binary min-heap on (time, id).

  private less(a: number, b: number): boolean {
    const ta = this.time[a];
    const tb = this.time[b];
    return ta < tb || (ta === tb && a < b);
  }

  private heapPush(n: number): void {
    const i = this.heapSize++;
    this.heap[i] = n;
    this.heapPos[n] = i;
    this.siftUp(i);
  }

  private heapRemove(n: number): void {
    const i = this.heapPos[n];
    this.heapPos[n] = -1;
    const last = this.heap[--this.heapSize];
    if (i === this.heapSize) return;
    this.heap[i] = last;
    this.heapPos[last] = i;
    this.siftDown(this.siftUp(i));
  }

  private siftUp(i: number): number {
    const h = this.heap;
    const n = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(n, h[p])) break;
      h[i] = h[p];
      this.heapPos[h[i]] = i;
      i = p;
    }
    h[i] = n;
    this.heapPos[n] = i;
    return i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const size = this.heapSize;
    const n = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && this.less(h[c + 1], h[c])) c++;
      if (!this.less(h[c], n)) break;
      h[i] = h[c];
      this.heapPos[h[i]] = i;
      i = c;
    }
    h[i] = n;
    this.heapPos[n] = i;
  }
}
