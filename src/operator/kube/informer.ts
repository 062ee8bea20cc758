import type { Logger } from 'pino';
import { isGone, type KubeClient, type WatchEvent } from './client.ts';
import { type KubeList, type KubeObject, keyOf, pathOf, type ResourceType } from './resources.ts';

/**
 * A list+watch cache that survives what real API servers do. One supervised loop owns the connection:
 * it lists (paged), then watches from the list's resourceVersion with bookmarks and a server-side timeout;
 * a clean close reconnects from the last resourceVersion, 410 Gone (status or ERROR event) relists, any
 * other failure retries with exponential backoff and jitter, and a watchdog relists when the stream goes
 * silent. Handlers receive objects from the cache and must not mutate them.
 */

export type InformerEventType = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (type: InformerEventType, obj: T, old?: T) => void;

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  /** Server-side watch timeout; the stream rotates before middleboxes kill it. */
  watchTimeoutSeconds?: number;
  /** Relist when neither an event nor a bookmark arrived for this long. */
  watchdogMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  pageSize?: number;
  logger?: Logger;
  /** Called on each list, watch start and failure (for metrics and tests). */
  onLifecycle?: (what: 'list' | 'watch' | 'error' | 'gone' | 'stall', detail?: unknown) => void;
}

export class Informer<T extends KubeObject> {
  private readonly client: KubeClient;
  private readonly resource: ResourceType;
  private readonly opts: Required<
    Omit<InformerOptions, 'namespace' | 'labelSelector' | 'logger' | 'onLifecycle'>
  > &
    InformerOptions;
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private resourceVersion = '';
  private synced = false;
  private stopped = true;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private lastSeen = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private syncWaiters: (() => void)[] = [];
  /** Consecutive failures; reset by a successful list or any watch event. */
  private failures = 0;

  constructor(client: KubeClient, resource: ResourceType, opts: InformerOptions = {}) {
    this.client = client;
    this.resource = resource;
    this.opts = {
      watchTimeoutSeconds: 300,
      watchdogMs: 0,
      backoffInitialMs: 1000,
      backoffMaxMs: 30_000,
      pageSize: 500,
      ...opts,
    };
    if (!this.opts.watchdogMs) this.opts.watchdogMs = this.opts.watchTimeoutSeconds * 1000 + 60_000;
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lastSeen = Date.now();
    this.watchdog = setInterval(() => this.checkStall(), Math.min(5000, this.opts.watchdogMs / 2));
    this.watchdog.unref();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.abort?.abort();
    await this.loop;
  }

  private checkStall(): void {
    if (this.stopped || !this.abort) return;
    if (Date.now() - this.lastSeen > this.opts.watchdogMs) {
      this.opts.logger?.warn({ resource: this.resource.plural }, 'Watch stalled; relisting');
      this.opts.onLifecycle?.('stall');
      this.resourceVersion = '';
      this.abort.abort();
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const started = Date.now();
      try {
        if (!this.resourceVersion) await this.relist();
        await this.watchOnce();
        // A clean close is normal (server timeout); reconnect at once unless it closed suspiciously fast.
        if (Date.now() - started < 1000 && this.resourceVersion) this.failures++;
      } catch (e) {
        if (this.stopped) break;
        if (isGone(e)) {
          this.opts.onLifecycle?.('gone');
          this.resourceVersion = '';
          continue;
        }
        this.failures++;
        this.opts.onLifecycle?.('error', e);
        this.opts.logger?.warn(
          { resource: this.resource.plural, err: (e as Error).message, failures: this.failures },
          'Watch failed; retrying',
        );
      }
      if (this.failures > 0 && !this.stopped) await this.sleep(backoff(this.failures, this.opts));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.abort = new AbortController();
      this.abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private async relist(): Promise<void> {
    const path = pathOf(this.resource, this.opts.namespace);
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.client.get<KubeList<T>>(path, {
        labelSelector: this.opts.labelSelector,
        limit: this.opts.pageSize,
        continue: cont,
      });
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion ?? '';
    } while (cont);
    this.opts.onLifecycle?.('list', items.length);
    this.lastSeen = Date.now();
    this.failures = 0;
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (!old) this.emit('add', item);
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) this.emit('update', item, old);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    this.resourceVersion = rv;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private async watchOnce(): Promise<void> {
    this.abort = new AbortController();
    this.opts.onLifecycle?.('watch');
    const path = pathOf(this.resource, this.opts.namespace);
    await this.client.watch<T & { code?: number; reason?: string; message?: string }>(
      path,
      {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.opts.watchTimeoutSeconds,
        labelSelector: this.opts.labelSelector,
      },
      (e) => this.handle(e),
      this.abort.signal,
    );
  }

  private handle(e: WatchEvent<T & { code?: number; reason?: string; message?: string }>): void {
    this.lastSeen = Date.now();
    this.failures = 0;
    if (e.type === 'ERROR') {
      const status = e.object;
      if (status.code === 410) {
        this.opts.onLifecycle?.('gone');
        this.resourceVersion = '';
        this.abort?.abort();
        return;
      }
      throw new Error(`watch error: ${status.message ?? JSON.stringify(status)}`);
    }
    const obj = e.object as T;
    if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
    if (e.type === 'BOOKMARK') return;
    const key = keyOf(obj);
    const old = this.cache.get(key);
    if (e.type === 'DELETED') {
      this.cache.delete(key);
      this.emit('delete', obj);
      return;
    }
    this.cache.set(key, obj);
    this.emit(old ? 'update' : 'add', obj, old);
  }

  private emit(type: InformerEventType, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (err) {
        this.opts.logger?.error({ err }, 'Informer handler failed');
      }
    }
  }
}

/** Exponential backoff with full jitter in [d/2, d]. */
export function backoff(failures: number, o: { backoffInitialMs: number; backoffMaxMs: number }): number {
  const d = Math.min(o.backoffMaxMs, o.backoffInitialMs * 2 ** Math.max(0, failures - 1));
  return d / 2 + Math.random() * (d / 2);
}
