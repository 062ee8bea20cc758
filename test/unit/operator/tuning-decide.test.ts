import { describe, expect, it } from 'vitest';
import {
  type DeploymentTuning,
  type DeploymentTuningSpec,
  DeploymentTuningSpecSchema,
  type DeploymentTuningStatus,
  type ServingSettings,
  type TuningRecommendation,
} from '../../../src/api/index.ts';
import type { Informer } from '../../../src/operator/kube/informer.ts';
import type { KubeObject } from '../../../src/operator/kube/resources.ts';
import type { BaselineResult, TargetAdapter } from '../../../src/operator/target/adapter.ts';
import {
  CONTROLLER_DEFAULTS,
  type DriftCheckResult,
  type FinishedSweep,
  type InFlight,
  MAX_REQUEUE_MS,
} from '../../../src/operator/tuning/context.ts';
import {
  applyStatusEdit,
  DIED_WITH_OPERATOR,
  decideTuning,
  type InFlightView,
  type Reobserved,
  TARGET_RETRY_MS,
  type TuningObservation,
  type TuningPlan,
} from '../../../src/operator/tuning/decide.ts';
import { type ObservedTarget, observeTuning } from '../../../src/operator/tuning/observe.ts';
import { recommendationName } from '../../../src/operator/tuning/recommendations.ts';
import {
  confirmDue,
  crashesOfDeadSweep,
  delayUntil,
  driftCheckIn,
  frequentScheduleWarning,
  nextSlot,
  plannedSlot,
  soonerSlot,
} from '../../../src/operator/tuning/slots.ts';
import { summarizeConditions } from '../../../src/operator/tuning/status.ts';

/**
 * The tuning controller's decide step, branch by branch, with an injected clock: every test asserts the
 * exact plan (steps in order, their times and reasons, and the requeue delay or the observation asked for).
 */

const T0 = new Date('2025-06-01T12:03:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const iso = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const LIMITS = CONTROLLER_DEFAULTS;
const KEY = 'team/llama';

const spec = (extra: object = {}): DeploymentTuningSpec =>
  DeploymentTuningSpecSchema.parse({
    targetRef: { name: 'llama' },
    workload: { source: { configMap: { name: 'c', key: 'k' } } },
    slos: [{ metric: 'TTFT', percentile: 90, maxMs: 2000 }],
    schedule: '0 * * * *',
    ...extra,
  });

function tuning(
  status?: DeploymentTuningStatus,
  meta: Partial<DeploymentTuning['metadata']> = {},
  specExtra: object = {},
): DeploymentTuning {
  return {
    apiVersion: 'servetune.dev/v1alpha1',
    kind: 'DeploymentTuning',
    metadata: {
      name: 'llama',
      namespace: 'team',
      generation: 1,
      creationTimestamp: '2025-06-01T00:00:00Z',
      ...meta,
    },
    spec: spec(specExtra),
    ...(status && { status }),
  } as DeploymentTuning;
}

const settings = { model: 'meta-llama/Llama-3.1-8B-Instruct' } as ServingSettings;
const targetObj: KubeObject = {
  apiVersion: 'nvidia.com/v1alpha1',
  kind: 'DynamoGraphDeployment',
  metadata: { name: 'llama', namespace: 'team' },
};
const adapter = (read: BaselineResult): TargetAdapter =>
  ({ kind: 'DynamoGraphDeployment', readBaseline: () => read }) as unknown as TargetAdapter;
const target: ObservedTarget = {
  adapter: adapter({ settings, warnings: [] }),
  obj: targetObj,
  baseline: { settings, warnings: [] },
};

const idle: InFlightView = { running: false, finished: undefined, checking: false, checked: undefined };

/** A first-round observation of a valid object (observedGeneration = generation unless the status says). */
function obs(
  dt: DeploymentTuning,
  over: {
    inFlight?: Partial<InFlightView>;
    again?: Reobserved;
  } = {},
): TuningObservation {
  return {
    key: KEY,
    tuning: { state: 'valid', dt, spec: spec(dt.spec as object), target },
    inFlight: { ...idle, ...over.inFlight },
    ...(over.again && { again: over.again }),
  };
}

/** Settled status: last swept an hour ago, next slot at 13:00, this generation observed. */
const settled = (extra: DeploymentTuningStatus = {}): DeploymentTuningStatus => ({
  observedGeneration: 1,
  lastSweepTime: '2025-06-01T11:00:00Z',
  nextSweepTime: '2025-06-01T13:00:00Z',
  ...extra,
});

const sweeping = (startedTime: string, crashes?: number): DeploymentTuningStatus =>
  settled({
    nextSweepTime: '2025-06-01T12:00:00Z',
    sweepStartedTime: startedTime,
    ...(crashes !== undefined && { sweepCrashes: crashes }),
    conditions: [
      {
        type: 'Sweeping',
        status: 'True',
        reason: 'SweepStarted',
        message: 'started',
        lastTransitionTime: startedTime,
      },
    ],
  });

describe('decideTuning: the object', () => {
  it('forgets a key whose object is gone or being deleted', () => {
    const gone = decideTuning({ key: KEY, tuning: { state: 'gone' }, inFlight: idle }, T0, LIMITS);
    expect(gone).toEqual({ steps: [{ kind: 'forget' }], next: {} });
    const deleting = decideTuning(
      { key: KEY, tuning: { state: 'deleting' }, inFlight: { ...idle, running: true } },
      T0,
      LIMITS,
    );
    expect(deleting).toEqual({ steps: [{ kind: 'forget' }], next: {} });
  });

  it('observe tells a missing object from one being deleted', () => {
    const o = (dt: DeploymentTuning | undefined) => ({
      tunings: { get: () => dt } as unknown as Informer<DeploymentTuning>,
      targets: new Map(),
    });
    const inFlight: InFlight = {
      running: new Map(),
      finished: new Map(),
      checking: new Map(),
      checked: new Map(),
    };
    expect(observeTuning(o(undefined), inFlight, KEY).tuning).toEqual({ state: 'gone' });
    const deleting = tuning(undefined, { deletionTimestamp: '2025-06-01T12:00:00Z' });
    expect(observeTuning(o(deleting), inFlight, KEY).tuning).toEqual({ state: 'deleting' });
  });

  it('degrades an invalid spec or a schedule that never fires, and does nothing else', () => {
    const inFlight: InFlight = {
      running: new Map(),
      finished: new Map(),
      checking: new Map(),
      checked: new Map(),
    };
    const observe = (dt: DeploymentTuning) =>
      observeTuning(
        { tunings: { get: () => dt } as unknown as Informer<DeploymentTuning>, targets: new Map() },
        inFlight,
        KEY,
      );
    const bad = tuning();
    (bad.spec as { slos: unknown }).slos = 'fast';
    expect(decideTuning(observe(bad), T0, LIMITS)).toEqual({
      steps: [
        {
          kind: 'degrade',
          reason: 'InvalidSpec',
          message: 'spec.slos: Invalid input: expected array, received string',
        },
      ],
      next: {},
    });
    const never = tuning(undefined, {}, { schedule: '0 0 30 2 *' });
    expect(decideTuning(observe(never), T0, LIMITS)).toEqual({
      steps: [
        {
          kind: 'degrade',
          reason: 'InvalidSchedule',
          message:
            "spec.schedule '0 0 30 2 *' never fires or is not valid: Invalid explicit day of month definition",
        },
      ],
      next: {},
    });
  });
});

describe('decideTuning: the target', () => {
  const inFlight: InFlight = {
    running: new Map(),
    finished: new Map(),
    checking: new Map(),
    checked: new Map(),
  };
  const observeWith = (targets: Map<string, { adapter: TargetAdapter; informer: Informer<KubeObject> }>) =>
    observeTuning(
      { tunings: { get: () => tuning(settled()) } as unknown as Informer<DeploymentTuning>, targets },
      inFlight,
      KEY,
    );
  const informer = (obj: KubeObject | undefined) =>
    ({ get: (k: string) => (k === 'team/llama' ? obj : undefined) }) as unknown as Informer<KubeObject>;
  const degraded = (reason: string, message: string): TuningPlan => ({
    steps: [{ kind: 'degrade', reason, message }],
    next: { requeueAfterMs: TARGET_RETRY_MS },
  });

  it('an unsupported kind, a missing object, an unreadable or unsupported one: Degraded, look again in 10 minutes', () => {
    expect(decideTuning(observeWith(new Map()), T0, LIMITS)).toEqual(
      degraded('TargetNotFound', 'target kind DynamoGraphDeployment is not supported'),
    );
    const missing = new Map([
      [
        'DynamoGraphDeployment',
        { adapter: adapter({ settings, warnings: [] }), informer: informer(undefined) },
      ],
    ]);
    expect(decideTuning(observeWith(missing), T0, LIMITS)).toEqual(
      degraded('TargetNotFound', 'DynamoGraphDeployment team/llama not found'),
    );
    const unreadable = new Map([
      [
        'DynamoGraphDeployment',
        { adapter: adapter({ error: 'no worker service' }), informer: informer(targetObj) },
      ],
    ]);
    expect(decideTuning(observeWith(unreadable), T0, LIMITS)).toEqual(
      degraded('TargetUnreadable', 'DynamoGraphDeployment llama: no worker service'),
    );
    const unsupported = new Map([
      [
        'DynamoGraphDeployment',
        {
          adapter: adapter({ error: 'multimodal encoders are not modelled', reason: 'UnsupportedFeature' }),
          informer: informer(targetObj),
        },
      ],
    ]);
    expect(decideTuning(observeWith(unsupported), T0, LIMITS)).toEqual(
      degraded('UnsupportedFeature', 'DynamoGraphDeployment llama: multimodal encoders are not modelled'),
    );
  });

  it('a readable target gives the observation its baseline', () => {
    const ok = new Map([
      [
        'DynamoGraphDeployment',
        { adapter: adapter({ settings, warnings: ['w'] }), informer: informer(targetObj) },
      ],
    ]);
    const o = observeWith(ok);
    expect(o.tuning.state).toBe('valid');
    if (o.tuning.state === 'valid')
      expect(o.tuning.target).toMatchObject({ obj: targetObj, baseline: { settings, warnings: ['w'] } });
  });
});

describe('decideTuning: background work', () => {
  const finished: FinishedSweep = {
    slot: '2025-06-01T12:00:00Z',
    reason: 'Schedule',
    startedTime: '2025-06-01T12:00:00Z',
    completedTime: '2025-06-01T12:02:30Z',
    generation: 1,
    baseline: settings,
    inventory: undefined,
  };
  const check: DriftCheckResult = {
    error: { reason: 'PrometheusUnreachable', message: 'connection refused' },
  };

  it('a finished sweep is written first, then the object is read again to requeue for its next slot', () => {
    const dt = tuning(sweeping('2025-06-01T12:00:00Z'));
    const plan = decideTuning(obs(dt, { inFlight: { finished, checked: check } }), T0, LIMITS);
    expect(plan).toEqual({
      steps: [{ kind: 'completeSweep', dt, sweep: finished }],
      next: { observe: { resume: 'requeueForNext' } },
    });
  });

  it('requeue for the next slot: the delay from the fresh read, bounded; nothing when none is set or the object is gone', () => {
    const dt = tuning(settled());
    const round = (fresh: DeploymentTuning | undefined, now = T0) =>
      decideTuning(obs(dt, { again: { resume: 'requeueForNext', fresh } }), now, LIMITS);
    expect(round(tuning(settled()))).toEqual({ steps: [], next: { requeueAfterMs: 57 * MIN } });
    expect(round(tuning(settled()), at(HOUR))).toEqual({ steps: [], next: { requeueAfterMs: 0 } });
    expect(round(tuning(settled({ nextSweepTime: '2025-06-08T00:00:00Z' })))).toEqual({
      steps: [],
      next: { requeueAfterMs: MAX_REQUEUE_MS },
    });
    expect(round(tuning({}))).toEqual({ steps: [], next: {} });
    expect(round(undefined)).toEqual({ steps: [], next: {} });
  });

  it('a running sweep: nothing to do until it finishes', () => {
    const dt = tuning(sweeping('2025-06-01T12:00:00Z'));
    expect(decideTuning(obs(dt, { inFlight: { running: true, checked: check } }), T0, LIMITS)).toEqual({
      steps: [],
      next: {},
    });
  });

  it('a drift check result is written, then the status it left is read before the schedule goes on', () => {
    const dt = tuning(settled());
    expect(decideTuning(obs(dt, { inFlight: { checked: check } }), T0, LIMITS)).toEqual({
      steps: [{ kind: 'applyDriftCheck', dt, check }],
      next: { observe: { resume: 'scheduleAfterDrift' } },
    });
  });

  it('after a drift trigger the fresh status makes the slot due: confirmed, with the fresh status and the checked spec', () => {
    const dt = tuning(settled());
    const freshStatus = settled({ nextSweepTime: iso(T0), sweepReason: 'WorkloadDrift' });
    // The fresh object's spec changed meanwhile (generation 2): this reconcile keeps acting on the spec it checked.
    const fresh = tuning(freshStatus, { generation: 2, resourceVersion: '42' }, { suspend: true });
    const plan = decideTuning(obs(dt, { again: { resume: 'scheduleAfterDrift', fresh } }), T0, LIMITS);
    const merged = { ...dt, metadata: fresh.metadata, status: freshStatus };
    expect(plan).toEqual({
      steps: [],
      next: { observe: { resume: 'confirmDue', dt: merged, slot: iso(T0), target } },
    });
  });

  it('after a drift check whose object is gone from the API, the cached status decides', () => {
    const dt = tuning(settled());
    const plan = decideTuning(
      obs(dt, { again: { resume: 'scheduleAfterDrift', fresh: undefined } }),
      T0,
      LIMITS,
    );
    expect(plan).toEqual({
      steps: [{ kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 1 } }],
      next: { requeueAfterMs: 57 * MIN },
    });
  });
});

describe('decideTuning: the schedule', () => {
  it('a frequent schedule is warned about once per generation, before anything else', () => {
    const every = (observedGeneration: number) =>
      tuning(
        settled({ observedGeneration, nextSweepTime: '2025-06-01T12:05:00Z' }),
        { generation: 2 },
        { schedule: '* * * * *' },
      );
    const warned = decideTuning(obs(every(1)), T0, LIMITS);
    expect(warned).toEqual({
      steps: [
        {
          kind: 'event',
          type: 'Warning',
          reason: 'ScheduleTooFrequent',
          action: 'Reconcile',
          message:
            'spec.schedule fires every 1m; this operator sweeps one object at most every 5m, so it follows the schedule at that interval.',
        },
        // The new spec also brings the slot forward, to the first fire 5 minutes after the last sweep.
        { kind: 'status', edit: { kind: 'moveSlot', slot: '2025-06-01T12:04:00Z' } },
        { kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T12:04:00Z', generation: 2 } },
      ],
      next: { requeueAfterMs: MIN },
    });
    expect(decideTuning(obs(every(2)), T0, LIMITS).steps.map((s) => s.kind)).toEqual(['status']);
  });

  it('the warning also comes first when a finished sweep or a running one is all there is', () => {
    const dt = tuning(settled({ observedGeneration: 1 }), { generation: 2 }, { schedule: '*/2 * * * *' });
    const plan = decideTuning(obs(dt, { inFlight: { running: true } }), T0, LIMITS);
    expect(plan.steps).toEqual([expect.objectContaining({ kind: 'event', reason: 'ScheduleTooFrequent' })]);
    expect(plan.next).toEqual({});
  });

  it('a spec change bringing a sooner schedule moves the slot, then waits for it', () => {
    // Planned at 18:00 under the old spec; the new one fires every 10 minutes, 5 minutes after the last sweep.
    const dt = tuning(
      settled({
        observedGeneration: 1,
        nextSweepTime: '2025-06-01T18:00:00Z',
        lastSweepTime: '2025-06-01T12:00:00Z',
      }),
      { generation: 2 },
      { schedule: '*/10 * * * *' },
    );
    expect(decideTuning(obs(dt), T0, LIMITS)).toEqual({
      steps: [
        { kind: 'status', edit: { kind: 'moveSlot', slot: '2025-06-01T12:10:00Z' } },
        { kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T12:10:00Z', generation: 2 } },
      ],
      next: { requeueAfterMs: 7 * MIN },
    });
  });

  it('a spec change with a later schedule keeps the planned slot', () => {
    const dt = tuning(settled({ observedGeneration: 1 }), { generation: 2 }, { schedule: '0 0 * * *' });
    expect(decideTuning(obs(dt), T0, LIMITS)).toEqual({
      steps: [{ kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 2 } }],
      next: { requeueAfterMs: 57 * MIN },
    });
  });

  it('suspended: Ready says so, the planned slot is kept, nothing is requeued (even when due)', () => {
    const dt = tuning(settled({ nextSweepTime: '2025-06-01T12:00:00Z' }), {}, { suspend: true });
    expect(decideTuning(obs(dt), T0, LIMITS)).toEqual({
      steps: [
        {
          kind: 'status',
          edit: {
            kind: 'schedule',
            slot: '2025-06-01T12:00:00Z',
            generation: 1,
            ready: { reason: 'Suspended', message: 'Sweeps are suspended.' },
          },
        },
      ],
      next: {},
    });
  });

  it('not yet due, drift disabled or without a baseline: schedule and wait for the slot', () => {
    const noBaseline = tuning(settled());
    expect(decideTuning(obs(noBaseline), T0, LIMITS)).toEqual({
      steps: [{ kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 1 } }],
      next: { requeueAfterMs: 57 * MIN },
    });
    const disabled = tuning(
      settled({ drift: driftStatus('2025-06-01T11:00:00Z') }),
      {},
      { drift: { enabled: false } },
    );
    expect(decideTuning(obs(disabled), T0, LIMITS).next).toEqual({ requeueAfterMs: 57 * MIN });
  });

  it('not yet due with a drift check due: schedule, then start the check with the served model', () => {
    const dt = tuning(settled({ drift: driftStatus('2025-06-01T11:55:00Z') }));
    expect(decideTuning(obs(dt), T0, LIMITS)).toEqual({
      steps: [
        { kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 1 } },
        { kind: 'startDriftCheck', dt, servedModel: settings.model },
      ],
      next: { requeueAfterMs: 57 * MIN },
    });
  });

  it('not yet due with a drift check to come: wait for whichever is sooner', () => {
    // Checked at 12:01 every 5 minutes: the next check at 12:06.
    const dt = tuning(settled({ drift: driftStatus('2025-06-01T12:01:00Z') }));
    expect(decideTuning(obs(dt), T0, LIMITS).next).toEqual({ requeueAfterMs: 3 * MIN });
    // A check already running: none started; the slot decides.
    const late = tuning(settled({ drift: driftStatus('2025-06-01T11:00:00Z') }));
    expect(decideTuning(obs(late, { inFlight: { checking: true } }), T0, LIMITS)).toEqual({
      steps: [{ kind: 'status', edit: { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 1 } }],
      next: { requeueAfterMs: 57 * MIN },
    });
  });

  it('a new object is due at its creation; due by the cache asks for a fresh read', () => {
    const dt = tuning();
    expect(decideTuning(obs(dt), T0, LIMITS)).toEqual({
      steps: [],
      next: { observe: { resume: 'confirmDue', dt, slot: '2025-06-01T00:00:00Z', target } },
    });
  });
});

describe('decideTuning: a due slot', () => {
  const dt = tuning(settled({ nextSweepTime: '2025-06-01T12:00:00Z' }));
  const slot = '2025-06-01T12:00:00Z';
  const confirm = (fresh: DeploymentTuning | undefined, now = T0) =>
    decideTuning(obs(dt, { again: { resume: 'confirmDue', dt, slot, target, fresh } }), now, LIMITS);
  const start = (fresh: DeploymentTuning, existing?: TuningRecommendation, s = slot) =>
    decideTuning(
      obs(dt, {
        again: {
          resume: 'startDue',
          dt,
          slot: s,
          target,
          fresh,
          recommendation: recommendationName('llama', s),
          existing,
        },
      }),
      T0,
      LIMITS,
    );

  it('the fresh read confirms the slot: look for its recommendation', () => {
    const fresh = tuning(settled({ nextSweepTime: slot }));
    expect(confirm(fresh)).toEqual({
      steps: [],
      next: {
        observe: { resume: 'startDue', dt, slot, target, fresh, recommendation: 'llama-1748779200' },
      },
    });
  });

  it('the fresh read shows a later slot (our last write had not reached the cache): wait for it', () => {
    const fresh = tuning(settled({ nextSweepTime: '2025-06-01T13:00:00Z' }));
    expect(confirm(fresh)).toEqual({ steps: [], next: { requeueAfterMs: 57 * MIN } });
  });

  it('the fresh read shows another slot already due: that one is swept', () => {
    const fresh = tuning(settled({ nextSweepTime: '2025-06-01T12:02:00Z' }));
    expect(confirm(fresh).next).toEqual({
      observe: {
        resume: 'startDue',
        dt,
        slot: '2025-06-01T12:02:00Z',
        target,
        fresh,
        recommendation: 'llama-1748779320',
      },
    });
  });

  it('the object is gone from the API: nothing', () => {
    expect(confirm(undefined)).toEqual({ steps: [], next: {} });
  });

  it("the slot's recommendation exists (the operator stopped after creating it): adopt it, then requeue", () => {
    const fresh = tuning(sweeping('2025-06-01T12:00:00Z', 2));
    const rec = { metadata: { name: 'llama-1748779200' } } as TuningRecommendation;
    expect(start(fresh, rec)).toEqual({
      steps: [{ kind: 'adoptRecommendation', dt, recommendation: rec, generation: 1 }],
      next: { observe: { resume: 'requeueForNext' } },
    });
  });

  it('no earlier sweep of the slot: start it', () => {
    const fresh = tuning(settled({ nextSweepTime: slot }));
    expect(start(fresh)).toEqual({ steps: [{ kind: 'startSweep', dt, slot, target }], next: {} });
  });

  it('a sweep of the slot died with the operator, below the limit: count the crash, then restart it', () => {
    expect(start(tuning(sweeping('2025-06-01T12:00:00Z')))).toEqual({
      steps: [
        { kind: 'status', edit: { kind: 'countCrash', crashes: 1 } },
        { kind: 'startSweep', dt, slot, target },
      ],
      next: {},
    });
    expect(start(tuning(sweeping('2025-06-01T12:00:00Z', 1))).steps[0]).toEqual({
      kind: 'status',
      edit: { kind: 'countCrash', crashes: 2 },
    });
  });

  it('at the crash limit: give the slot up, then requeue for the next one', () => {
    expect(start(tuning(sweeping('2025-06-01T12:00:00Z', 2)))).toEqual({
      steps: [{ kind: 'giveUpSlot', dt, crashes: 3, why: DIED_WITH_OPERATOR }],
      next: { observe: { resume: 'requeueForNext' } },
    });
    const strict = { ...LIMITS, maxSweepCrashes: 1 };
    const plan = decideTuning(
      obs(dt, {
        again: {
          resume: 'startDue',
          dt,
          slot,
          target,
          fresh: tuning(sweeping('2025-06-01T12:00:00Z')),
          recommendation: 'llama-1748779200',
          existing: undefined,
        },
      }),
      T0,
      strict,
    );
    expect(plan.steps).toEqual([{ kind: 'giveUpSlot', dt, crashes: 1, why: DIED_WITH_OPERATOR }]);
  });
});

describe('decideTuning: rounds of one reconcile', () => {
  it('drift trigger to sweep start, as the coordinator would run it', () => {
    const dt = tuning(settled());
    const check: DriftCheckResult = { error: { reason: 'x', message: 'y' } };
    let o = obs(dt, { inFlight: { checked: check } });
    const kinds: string[] = [];
    const afterDrift = tuning(settled({ nextSweepTime: iso(T0), sweepReason: 'WorkloadDrift' }));
    let plan = decideTuning(o, T0, LIMITS);
    for (let round = 0; round < 8 && 'observe' in plan.next; round++) {
      kinds.push(...plan.steps.map((s) => s.kind));
      const c = plan.next.observe;
      const again: Reobserved =
        c.resume === 'startDue' ? { ...c, existing: undefined } : { ...c, fresh: afterDrift };
      o = { ...o, inFlight: idle, again };
      plan = decideTuning(o, at(1000), LIMITS);
    }
    kinds.push(...plan.steps.map((s) => s.kind));
    expect(kinds).toEqual(['applyDriftCheck', 'startSweep']);
    const startStep = plan.steps[0];
    expect(startStep.kind === 'startSweep' && startStep.dt.status?.sweepReason).toBe('WorkloadDrift');
    expect(startStep.kind === 'startSweep' && startStep.slot).toBe(iso(T0));
  });
});

describe('applyStatusEdit', () => {
  const NOW = new Date('2025-06-01T12:03:04.567Z');

  it('moveSlot replaces the planned slot; schedule keeps one that is set', () => {
    const st: DeploymentTuningStatus = { nextSweepTime: '2025-06-01T18:00:00Z' };
    applyStatusEdit(st, { kind: 'moveSlot', slot: '2025-06-01T12:10:00Z' }, NOW);
    expect(st.nextSweepTime).toBe('2025-06-01T12:10:00Z');
    applyStatusEdit(st, { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 3 }, NOW);
    expect(st.nextSweepTime).toBe('2025-06-01T12:10:00Z');
    expect(st.observedGeneration).toBe(3);
  });

  it('schedule on a new status: the slot, the initial conditions and Ready, timed by the injected clock', () => {
    const st: DeploymentTuningStatus = {};
    applyStatusEdit(st, { kind: 'schedule', slot: '2025-06-01T13:00:00Z', generation: 1 }, NOW);
    expect(st.nextSweepTime).toBe('2025-06-01T13:00:00Z');
    expect(st.conditions).toEqual([
      cond('Sweeping', 'False', 'Idle', 'No sweep has run yet.'),
      cond('RecommendationAvailable', 'Unknown', 'NoSweepYet', 'No sweep has completed yet.'),
      cond('Degraded', 'False', 'AsExpected', 'Nothing is wrong.'),
      cond('Ready', 'True', 'Scheduled', 'Next sweep at 2025-06-01T13:00:00Z.'),
    ]);
  });

  it('schedule with Suspended overrides Ready; a condition keeps its transition time while its status holds', () => {
    const st: DeploymentTuningStatus = {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Scheduled',
          message: 'x',
          lastTransitionTime: '2025-05-01T00:00:00Z',
        },
        {
          type: 'Degraded',
          status: 'True',
          reason: 'TargetNotFound',
          message: 'gone',
          lastTransitionTime: '2025-05-02T00:00:00Z',
        },
      ],
    };
    applyStatusEdit(
      st,
      {
        kind: 'schedule',
        slot: '2025-06-01T13:00:00Z',
        generation: 2,
        ready: { reason: 'Suspended', message: 'Sweeps are suspended.' },
      },
      NOW,
    );
    // The target is found again (a config reason clears), and Ready stays True since May.
    expect(st.conditions?.find((c) => c.type === 'Degraded')).toEqual(
      cond('Degraded', 'False', 'AsExpected', 'Nothing is wrong.', 2),
    );
    expect(st.conditions?.find((c) => c.type === 'Ready')).toEqual({
      ...cond('Ready', 'True', 'Suspended', 'Sweeps are suspended.', 2),
      lastTransitionTime: '2025-05-01T00:00:00Z',
    });
  });

  it('countCrash sets the crash count', () => {
    const st: DeploymentTuningStatus = { sweepCrashes: 1 };
    applyStatusEdit(st, { kind: 'countCrash', crashes: 2 }, NOW);
    expect(st).toEqual({ sweepCrashes: 2 });
  });

  it('summarizeConditions keeps a non-config Degraded and reports it in Ready', () => {
    const st: DeploymentTuningStatus = {
      conditions: [cond('Degraded', 'True', 'SweepCrashed', 'crashed', 1)],
    };
    summarizeConditions(st, 1, NOW);
    expect(st.conditions?.find((c) => c.type === 'Ready')).toEqual(
      cond('Ready', 'False', 'SweepCrashed', 'crashed'),
    );
  });

  function cond(
    type: string,
    status: 'True' | 'False' | 'Unknown',
    reason: string,
    message: string,
    generation = 1,
  ) {
    return {
      type,
      status,
      reason,
      message,
      observedGeneration: generation,
      lastTransitionTime: '2025-06-01T12:03:04Z',
    };
  }
});

describe('slot helpers', () => {
  const s = spec();

  it('nextSlot: the next fire after now, at least the minimum interval after the last sweep', () => {
    expect(iso(nextSlot(s, undefined, T0, 5 * MIN))).toBe('2025-06-01T13:00:00Z');
    expect(iso(nextSlot(s, { lastSweepTime: '2025-06-01T12:58:00Z' }, T0, 5 * MIN))).toBe(
      '2025-06-01T14:00:00Z',
    );
    const often = spec({ schedule: '* * * * *' });
    expect(iso(nextSlot(often, { lastSweepTime: '2025-06-01T12:02:00Z' }, T0, 5 * MIN))).toBe(
      '2025-06-01T12:07:00Z',
    );
  });

  it('plannedSlot: the status slot, else the creation time, else now', () => {
    expect(plannedSlot(tuning(settled()), T0)).toBe('2025-06-01T13:00:00Z');
    expect(plannedSlot(tuning(), T0)).toBe('2025-06-01T00:00:00Z');
    expect(plannedSlot(tuning(undefined, { creationTimestamp: undefined }), at(1500))).toBe(
      '2025-06-01T12:03:01Z',
    );
  });

  it('soonerSlot: only after a spec change, only when sooner, only with a slot planned', () => {
    const often = { schedule: '*/10 * * * *' };
    const changed = (st: DeploymentTuningStatus) => tuning(st, { generation: 2 }, often);
    const planned = settled({ nextSweepTime: '2025-06-01T18:00:00Z', lastSweepTime: '2025-06-01T12:00:00Z' });
    expect(soonerSlot(changed(planned), spec(often), '2025-06-01T18:00:00Z', T0, 5 * MIN)).toBe(
      '2025-06-01T12:10:00Z',
    );
    expect(
      soonerSlot(
        changed({ ...planned, observedGeneration: 2 }),
        spec(often),
        '2025-06-01T18:00:00Z',
        T0,
        5 * MIN,
      ),
    ).toBeUndefined();
    expect(
      soonerSlot(
        changed({ ...planned, nextSweepTime: undefined }),
        spec(often),
        '2025-06-01T18:00:00Z',
        T0,
        5 * MIN,
      ),
    ).toBeUndefined();
    expect(soonerSlot(changed(planned), spec(often), '2025-06-01T12:05:00Z', T0, 5 * MIN)).toBeUndefined();
  });

  it('confirmDue: the same slot, a later one to wait for (bounded), or an earlier one due now', () => {
    const fresh = (next?: string) => tuning(next ? settled({ nextSweepTime: next }) : {});
    expect(confirmDue(fresh('2025-06-01T12:00:00Z'), '2025-06-01T12:00:00Z', T0)).toEqual({
      slot: '2025-06-01T12:00:00Z',
    });
    expect(confirmDue(fresh(), '2025-06-01T12:00:00Z', T0)).toEqual({ slot: '2025-06-01T12:00:00Z' });
    expect(confirmDue(fresh('2025-06-01T12:04:00Z'), '2025-06-01T12:00:00Z', T0)).toEqual({ waitMs: MIN });
    expect(confirmDue(fresh('2025-06-09T00:00:00Z'), '2025-06-01T12:00:00Z', T0)).toEqual({
      waitMs: MAX_REQUEUE_MS,
    });
    expect(confirmDue(fresh('2025-06-01T12:03:00Z'), '2025-06-01T12:00:00Z', T0)).toEqual({
      slot: '2025-06-01T12:03:00Z',
    });
  });

  it('crashesOfDeadSweep: only a started sweep still marked Sweeping counts', () => {
    expect(crashesOfDeadSweep(tuning(sweeping('2025-06-01T12:00:00Z')))).toBe(1);
    expect(crashesOfDeadSweep(tuning(sweeping('2025-06-01T12:00:00Z', 4)))).toBe(5);
    const notStarted = sweeping('2025-06-01T12:00:00Z');
    notStarted.sweepStartedTime = undefined;
    expect(crashesOfDeadSweep(tuning(notStarted))).toBeUndefined();
    const idleStatus = sweeping('2025-06-01T12:00:00Z');
    idleStatus.conditions![0].status = 'False';
    expect(crashesOfDeadSweep(tuning(idleStatus))).toBeUndefined();
    expect(crashesOfDeadSweep(tuning())).toBeUndefined();
  });

  it('delayUntil: bounded to [0, MAX_REQUEUE_MS]', () => {
    expect(delayUntil('2025-06-01T12:00:00Z', T0)).toBe(0);
    expect(delayUntil('2025-06-01T12:04:30Z', T0)).toBe(90_000);
    expect(delayUntil('2026-01-01T00:00:00Z', T0)).toBe(MAX_REQUEUE_MS);
  });

  it('frequentScheduleWarning: only for a schedule faster than the minimum, once per generation', () => {
    const fast = (observed?: number) =>
      tuning(
        observed === undefined ? undefined : { observedGeneration: observed },
        { generation: 3 },
        { schedule: '*/30 * * * * *' },
      );
    const msg = frequentScheduleWarning(fast(), spec({ schedule: '*/30 * * * * *' }), T0, 5 * MIN);
    expect(msg).toBe(
      'spec.schedule fires every 30s; this operator sweeps one object at most every 5m, so it follows the schedule at that interval.',
    );
    expect(
      frequentScheduleWarning(fast(3), spec({ schedule: '*/30 * * * * *' }), T0, 5 * MIN),
    ).toBeUndefined();
    expect(frequentScheduleWarning(fast(2), spec({ schedule: '*/30 * * * * *' }), T0, 5 * MIN)).toBeDefined();
    expect(frequentScheduleWarning(fast(), spec({ schedule: '*/5 * * * *' }), T0, 5 * MIN)).toBeUndefined();
  });

  it('driftCheckIn: none without drift, baseline, or while one is busy; else until the next check', () => {
    const withBaseline = tuning(settled({ drift: driftStatus('2025-06-01T12:01:00Z') }));
    expect(driftCheckIn(withBaseline, s, false, T0)).toBe(3 * MIN);
    expect(driftCheckIn(withBaseline, s, false, at(10 * MIN))).toBe(-7 * MIN);
    expect(driftCheckIn(withBaseline, s, true, T0)).toBeUndefined();
    expect(driftCheckIn(withBaseline, spec({ drift: { enabled: false } }), false, T0)).toBeUndefined();
    expect(driftCheckIn(tuning(settled()), s, false, T0)).toBeUndefined();
    const noBaseline = tuning(
      settled({ drift: { ...driftStatus('2025-06-01T12:01:00Z'), baseline: undefined } }),
    );
    expect(driftCheckIn(noBaseline, s, false, T0)).toBeUndefined();
  });
});

/** A drift status with a baseline (its content does not matter to when a check is due). */
function driftStatus(checkedTime: string): NonNullable<DeploymentTuningStatus['drift']> {
  return {
    checkedTime,
    level: 0,
    drifted: false,
    phase: 'Stable',
    armed: true,
    scores: {},
    baseline: { time: '2025-06-01T11:00:00Z' },
  } as unknown as NonNullable<DeploymentTuningStatus['drift']>;
}
