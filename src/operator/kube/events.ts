import type { Logger } from 'pino';
import type { KubeClient } from './client.ts';
import { microTime } from './leader.ts';
import { boundedName } from './names.ts';
import { EVENTS, type KubeObject, pathOf } from './resources.ts';

/**
 * Writes events.k8s.io/v1 Events. Repeats of the same (object, type, reason, note) within the series window
 * bump the existing Event's series instead of creating new ones. Events are notifications, not the audit
 * trail (they expire); failures to write them are logged and otherwise ignored.
 */

export interface EventRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

export function refOf(o: KubeObject): EventRef {
  return {
    apiVersion: o.apiVersion ?? '',
    kind: o.kind ?? '',
    name: o.metadata.name,
    namespace: o.metadata.namespace,
    uid: o.metadata.uid,
  };
}

export interface EventRecorderOptions {
  controller: string;
  instance: string;
  logger?: Logger;
  seriesWindowMs?: number;
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly o: EventRecorderOptions;
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();

  constructor(client: KubeClient, opts: EventRecorderOptions) {
    this.client = client;
    this.o = opts;
  }

  async emit(
    regarding: EventRef,
    type: 'Normal' | 'Warning',
    reason: string,
    action: string,
    note: string,
    related?: EventRef,
  ): Promise<void> {
    const namespace = regarding.namespace ?? 'default';
    const key = `${regarding.uid}|${type}|${reason}|${note}`;
    const now = Date.now();
    const prev = this.recent.get(key);
    try {
      if (prev && now - prev.at < (this.o.seriesWindowMs ?? 600_000)) {
        prev.count++;
        prev.at = now;
        await this.client.mergePatch(pathOf(EVENTS, prev.namespace, prev.name), {
          series: { count: prev.count, lastObservedTime: microTime() },
        });
        return;
      }
      const created = await this.client.create<{ metadata: { name: string } }>(pathOf(EVENTS, namespace), {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        // Named like client-go's recorder: <object>.<hex nanoseconds>.
        metadata: {
          name: boundedName(
            regarding.name,
            `.${(process.hrtime.bigint() + BigInt(now) * 1_000_000n).toString(16)}`,
          ),
          namespace,
        },
        eventTime: microTime(),
        reportingController: this.o.controller,
        reportingInstance: this.o.instance,
        action,
        reason,
        type,
        note: note.slice(0, 1024),
        regarding,
        ...(related && { related }),
      });
      this.recent.set(key, { name: created.metadata.name, namespace, count: 1, at: now });
      if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value!);
    } catch (err) {
      this.o.logger?.warn({ err: (err as Error).message, reason }, 'Recording an event failed');
    }
  }
}
