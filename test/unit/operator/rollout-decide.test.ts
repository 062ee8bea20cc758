import { describe, expect, it } from 'vitest';
import {
  DeploymentTuningSpecSchema,
  type OwnedFields,
  type ServingSettings,
  type TuningRecommendationSpec,
  type TuningRecommendationStatus,
} from '../../../src/api/index.ts';
import {
  automaticBlock,
  budgetGpus,
  decideRollout,
  dueWindow,
  gpusChanging,
  inMaintenanceWindow,
  nextStage,
  type RolloutObservation,
  settingsDigest,
} from '../../../src/operator/rollout/decide.ts';
import { verificationQueries } from '../../../src/operator/rollout/prometheus.ts';

/** The rollout state machine, transition by transition, with the clock injected. */

const T0 = new Date('2026-06-01T12:00:00Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);
const iso = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z');

const settings = (workers: number, tp = 1): ServingSettings => ({
  model: 'Qwen/Qwen3-8B',
  gpuType: 'h100_sxm',
  gpus: workers * tp,
  topology: 'Aggregated',
  aggregated: { workers, tensorParallel: tp, gpusPerWorker: tp },
  router: { mode: 'RoundRobin' },
  planner: { enabled: false },
});

const metrics = (ttft: number, itl: number, meets = true) => ({
  ttftMs: { p50: ttft / 2, p90: ttft, p99: ttft * 2 },
  itlMs: { p50: itl / 2, p90: itl, p99: itl * 2 },
  e2eMs: { p50: 1000, p90: 2000, p99: 3000 },
  requestThroughputRps: 10,
  outputTokensPerSecond: 1000,
  outputTokensPerSecondPerGpu: 250,
  goodputFraction: 1,
  meetsSlos: meets,
  objectiveValue: 250,
});

const iv = (low: number, high: number) => ({ low, high });
const recSpec = (over: Partial<TuningRecommendationSpec> = {}): TuningRecommendationSpec => ({
  deploymentTuning: 'llama',
  targetRef: { apiVersion: 'nvidia.com/v1beta1', kind: 'DynamoGraphDeployment', name: 'llama' },
  objective: 'ThroughputPerGPU',
  baseline: settings(4),
  proposal: settings(2),
  predicted: {
    baseline: metrics(800, 30),
    proposal: metrics(1000, 40),
    gainPercent: 50,
    gainPercentLow: 35,
    intervals: {
      baseline: {
        objectiveValue: iv(100, 120),
        ttftP90Ms: iv(700, 900),
        itlP90Ms: iv(25, 35),
        e2eP90Ms: iv(1, 2),
      },
      proposal: {
        objectiveValue: iv(150, 180),
        ttftP90Ms: iv(900, 1200),
        itlP90Ms: iv(35, 45),
        e2eP90Ms: iv(1, 2),
      },
    },
  },
  frontier: [],
  explanation: 'x',
  trace: { source: 's', hash: 'h', windowStartSeconds: 0, windowEndSeconds: 60, requests: 100 },
  sweep: {
    scheduledTime: iso(T0),
    startedTime: iso(T0),
    completedTime: iso(T0),
    candidates: 4,
    feasible: 4,
    optimizer: 'grid',
    simulatorVersion: 'v',
  },
  ...over,
});

const owned = (replicas: number, tp = 1): OwnedFields => ({
  apiVersion: 'nvidia.com/v1beta1',
  components: [
    { name: 'frontend', args: ['python3 -m dynamo.frontend --router-mode round-robin'] },
    {
      name: 'worker',
      replicas,
      args: ['--model', 'Qwen/Qwen3-8B', '--tensor-parallel-size', String(tp)],
      gpus: String(tp),
    },
  ],
});

const tuningSpec = (updatePolicy: object = {}, extra: object = {}) =>
  DeploymentTuningSpecSchema.parse({
    targetRef: { name: 'llama' },
    workload: { source: { configMap: { name: 'c', key: 'k' } } },
    slos: [
      { metric: 'TTFT', percentile: 90, maxMs: 2000 },
      { metric: 'ITL', percentile: 90, maxMs: 60 },
    ],
    updatePolicy: { mode: 'Approval', ...updatePolicy },
    ...extra,
  });

function obs(
  over: Partial<RolloutObservation> & {
    state?: TuningRecommendationStatus['state'];
    status?: Partial<TuningRecommendationStatus>;
  } = {},
): RolloutObservation {
  const { state, status, ...rest } = over;
  return {
    now: T0,
    rec: {
      name: 'llama-1',
      creationTimestamp: iso(T0),
      spec: recSpec(),
      status: state
        ? ({ state, stateTransitionTime: iso(T0), ...status } as TuningRecommendationStatus)
        : undefined,
    },
    tuning: { spec: tuningSpec(), horizonHours: 24, calibrationErrorPercent: 5 },
    target: {
      owned: owned(4),
      plan: { target: owned(2), notes: [] },
      settings: settings(4),
      generation: 3,
      ready: { status: 'True', observedGeneration: 3 },
      gpus: 4,
    },
    reviewPolicy: true,
    ...rest,
  };
}

const withSpec = (o: RolloutObservation, spec: Partial<TuningRecommendationSpec>): RolloutObservation => ({
  ...o,
  rec: { ...o.rec, spec: { ...o.rec.spec, ...spec } },
});

describe('Proposed', () => {
  it('waits for a review until the approval window ends, then expires', () => {
    const d = decideRollout(obs());
    expect(d.status).toBeUndefined();
    expect(d.requeueAfterMs).toBeGreaterThan(0);
    const late = decideRollout(obs({ now: at(24 * 3600 + 1) }));
    expect(late.status?.state).toBe('Expired');
    expect(late.outcome).toBe('Expired');
    expect(late.events[0]).toMatchObject({ type: 'Warning', reason: 'Expired' });
  });

  it('records an approval with its author, and a rejection with its reason', () => {
    const a = decideRollout(withSpec(obs(), { review: { decision: 'Approved', by: 'alice' } }));
    expect(a.status?.state).toBe('Approved');
    expect(a.status?.rollout?.transitions?.at(-1)).toMatchObject({
      state: 'Approved',
      actor: 'alice',
      time: iso(T0),
    });
    const r = decideRollout(
      withSpec(obs(), { review: { decision: 'Rejected', by: 'bob', reason: 'too risky' } }),
    );
    expect(r.status?.state).toBe('Rejected');
    expect(r.status?.message).toContain('too risky');
    expect(r.outcome).toBe('Rejected');
  });

  it('does not trust a review without the admission policy that checks its author', () => {
    const d = decideRollout({
      ...withSpec(obs(), { review: { decision: 'Approved', by: 'mallory' } }),
      reviewPolicy: false,
    });
    expect(d.status?.state).toBe('Proposed');
    expect(d.events[0].reason).toBe('ReviewPolicyMissing');
  });

  it('is superseded when its DeploymentTuning is gone', () => {
    expect(decideRollout({ ...obs(), tuning: undefined }).status?.state).toBe('Superseded');
  });
});

describe('Automatic mode guardrails', () => {
  const auto = (over: Partial<RolloutObservation> = {}, policy: object = {}) => {
    const o = obs(over);
    return {
      ...o,
      tuning: { ...o.tuning!, spec: tuningSpec({ mode: 'Automatic', ...policy }), ...over.tuning },
    };
  };

  it('approves on its own when every guardrail passes', () => {
    const d = decideRollout(auto());
    expect(d.status?.state).toBe('Approved');
    expect(d.status?.rollout?.transitions?.at(-1)).toMatchObject({
      actor: 'servetune',
      reason: 'AutomaticApproval',
    });
  });

  it('holds for each guardrail, saying which', () => {
    const cases: [RolloutObservation, RegExp][] = [
      [
        withSpec(auto(), { predicted: { ...recSpec().predicted, gainPercentLow: 3 } }),
        /after subtracting the prediction's uncertainty is 3%/,
      ],
      [
        withSpec(auto(), { predicted: { ...recSpec().predicted, gainPercentLow: undefined } }),
        /no uncertainty interval/,
      ],
      [
        auto({ tuning: { spec: tuningSpec({ mode: 'Automatic' }), horizonHours: 24 } }),
        /calibration error .* not known/,
      ],
      [
        auto({
          tuning: { spec: tuningSpec({ mode: 'Automatic' }), horizonHours: 24, calibrationErrorPercent: 40 },
        }),
        /calibration error is 40%/,
      ],
      [
        auto({
          tuning: {
            spec: tuningSpec({ mode: 'Automatic' }),
            horizonHours: 24,
            calibrationErrorPercent: 5,
            lastChangeTime: iso(at(-600)),
          },
        }),
        /last change .* cool-down/,
      ],
      [
        auto({
          tuning: {
            spec: tuningSpec({ mode: 'Automatic' }),
            horizonHours: 24,
            calibrationErrorPercent: 5,
            lastRollbackTime: iso(at(-600)),
          },
        }),
        /last rollback .* cool-down/,
      ],
      [
        auto(
          {},
          {
            automatic: {
              coolDown: '2h',
              maxCalibrationErrorPercent: 25,
              maintenanceWindows: [{ start: '0 2 * * *', duration: '1h' }],
            },
          },
        ),
        /outside the maintenance windows/,
      ],
      [
        withSpec(auto(), {
          transition: {
            workersStarting: 2,
            coldStartSeconds: 300,
            extraGpuHours: 50,
            stages: 1,
            gainPerHour: 1,
            paybackHours: 50,
          },
        }),
        /pays back its transition after 50 h/,
      ],
      [
        withSpec(auto(), {
          transition: {
            workersStarting: 2,
            coldStartSeconds: 300,
            extraGpuHours: 0.3,
            stages: 1,
            gainPerHour: 1,
            paybackHours: 0.3,
            simulated: simulatedTransition(90),
          },
        }),
        /simulated transition puts p90 TTFT or ITL over twice the SLO for 90 s/,
      ],
    ];
    for (const [o, why] of cases) {
      const d = decideRollout(o);
      expect(d.status?.state, String(why)).toBe('Proposed');
      expect(d.status?.message, String(why)).toMatch(why);
      expect(d.events[0].reason).toBe('GuardrailBlocked');
    }
  });

  it('lets a simulated transition briefly outside the SLOs through, and a long miss wait for a person', () => {
    const transition = (miss: number) => ({
      workersStarting: 2,
      coldStartSeconds: 300,
      extraGpuHours: 0.3,
      stages: 1,
      gainPerHour: 1,
      paybackHours: 0.3,
      simulated: simulatedTransition(miss),
    });
    expect(automaticBlock(withSpec(auto(), { transition: transition(60) }))).toBeUndefined();
    expect(automaticBlock(withSpec(auto(), { transition: transition(61) }))).toMatch(/61 s/);
  });

  it('approves a fix for missed SLOs only if it meets them across its uncertainty', () => {
    const missing = { ...recSpec().predicted, baseline: metrics(5000, 30, false), gainPercentLow: -20 };
    expect(automaticBlock(withSpec(auto(), { predicted: missing }))).toBeUndefined();
    const risky = {
      ...missing,
      intervals: {
        ...missing.intervals!,
        proposal: { ...missing.intervals!.proposal, ttftP90Ms: iv(1500, 2500) },
      },
    };
    expect(automaticBlock(withSpec(auto(), { predicted: risky }))).toMatch(/may miss the TTFT SLO/);
  });

  it('opens maintenance windows at their cron times for their duration', () => {
    const w = [{ start: '0 12 * * *', duration: '30m' }];
    expect(inMaintenanceWindow(w, at(60))).toBe(true);
    expect(inMaintenanceWindow(w, at(31 * 60))).toBe(false);
    expect(inMaintenanceWindow(undefined, at(0))).toBe(true);
  });

  it('lets an unapproved proposal expire when the guardrails never pass', () => {
    const o = auto({ now: at(25 * 3600) });
    const d = decideRollout({ ...o, tuning: { ...o.tuning!, calibrationErrorPercent: undefined } });
    expect(d.status?.state).toBe('Expired');
  });
});

describe('Approved', () => {
  const approved = (over: Partial<RolloutObservation> = {}) => obs({ state: 'Approved', ...over });

  it('records the exact baseline and target values before anything is applied', () => {
    const d = decideRollout(approved());
    expect(d.status?.state).toBe('Applying');
    expect(d.status?.rollout?.baseline).toEqual(owned(4));
    expect(d.status?.rollout?.target).toEqual(owned(2));
    expect(d.action).toBeUndefined(); // the write comes after the state is persisted
  });

  it('fails when the target is gone, changed since the proposal, or the change cannot be made in place', () => {
    expect(decideRollout(approved({ target: { missing: 'gone' } })).status).toMatchObject({
      state: 'Failed',
    });
    const changed = approved();
    (changed.target as { settings: ServingSettings }).settings = settings(5);
    expect(decideRollout(changed).status?.rollout?.transitions?.at(-1)?.reason).toBe('TargetChanged');
    const unsupported = approved();
    (unsupported.target as { plan: unknown }).plan = { unsupported: 'changing the engine' };
    expect(decideRollout(unsupported).status?.message).toMatch(/changing the engine/);
  });

  it('waits while another rollout runs on the target, and in mode Off', () => {
    expect(decideRollout(approved({ otherActive: 'llama-0' })).status?.message).toMatch(
      /llama-0 is being rolled out/,
    );
    const off = approved();
    const d = decideRollout({ ...off, tuning: { ...off.tuning!, spec: tuningSpec({ mode: 'Off' }) } });
    expect(d.status?.state).toBe('Approved');
    expect(d.status?.message).toMatch(/mode is Off/);
  });

  it('refuses a template change larger than the disruption budget', () => {
    const o = approved();
    const t = o.target as { plan: unknown; owned: OwnedFields };
    t.plan = { target: owned(4, 2), notes: [] };
    const d = decideRollout({ ...o, tuning: { ...o.tuning!, spec: tuningSpec({ maxGPUsChanging: 2 }) } });
    expect(d.status?.state).toBe('Failed');
    expect(d.status?.message).toMatch(/disruption budget of 2/);
  });
});

describe('Applying', () => {
  const applying = (status: Partial<TuningRecommendationStatus> = {}) =>
    obs({ state: 'Applying', status: { rollout: { baseline: owned(4), target: owned(2) }, ...status } });

  it('asks for the apply of the recorded target, forced only when the spec says so', () => {
    expect(decideRollout(applying()).action).toEqual({ kind: 'apply', owned: owned(2), force: false });
    const o = applying();
    expect(
      decideRollout({ ...o, tuning: { ...o.tuning!, spec: tuningSpec({ forceConflicts: true }) } }).action
        ?.force,
    ).toBe(true);
  });

  it('moves to Applied on success, remembering the generation and the change time', () => {
    const d = decideRollout({ ...applying(), actionResult: { ok: true, generation: 4 } });
    expect(d.status).toMatchObject({ state: 'Applied', rollout: { appliedGeneration: 4 } });
    expect(d.tuning?.lastChangeTime).toBe(iso(T0));
  });

  it('reports a field conflict with the other manager, having changed nothing', () => {
    const d = decideRollout({
      ...applying(),
      actionResult: {
        ok: false,
        permanent: true,
        message: '409',
        conflict: { managers: ['argocd-controller'], fields: ['.spec.components[name="worker"].replicas'] },
      },
    });
    expect(d.status?.state).toBe('Failed');
    expect(d.status?.rollout?.transitions?.at(-1)?.reason).toBe('FieldConflict');
    expect(d.status?.message).toMatch(/argocd-controller owns .*replicas/);
    expect(d.status?.rollout?.conflict?.managers).toEqual(['argocd-controller']);
  });

  it('retries a transient failure and fails on a permanent one', () => {
    expect(
      decideRollout({ ...applying(), actionResult: { ok: false, permanent: false, message: 'timed out' } })
        .status?.state,
    ).toBe('Applying');
    expect(
      decideRollout({ ...applying(), actionResult: { ok: false, permanent: true, message: '422 invalid' } })
        .status?.state,
    ).toBe('Failed');
  });

  it('stages a replica change over budget, verifying each stage before the next', () => {
    const o = applying({ rollout: { baseline: owned(1), target: owned(9) } });
    o.target = { ...(o.target as object), owned: owned(1), gpus: 1 } as RolloutObservation['target'];
    const spec = tuningSpec({ maxGPUsChanging: 4 });
    const first = decideRollout({ ...o, tuning: { ...o.tuning!, spec } });
    expect(first.action?.owned.components[1].replicas).toBe(5);
    const applied = decideRollout({
      ...o,
      tuning: { ...o.tuning!, spec },
      actionResult: { ok: true, generation: 5 },
    });
    expect(applied.status?.rollout?.transitions?.at(-1)?.reason).toBe('StageApplied');
    expect(applied.status?.rollout?.applied?.components[1].replicas).toBe(5);
    // Ready at 5 replicas: the stage is verified first.
    const rollout = { baseline: owned(1), target: owned(9), applied: owned(5), appliedGeneration: 5 };
    const ready = obs({ state: 'Applied', status: { rollout } });
    ready.target = {
      ...(ready.target as object),
      owned: owned(5),
      ready: { status: 'True', observedGeneration: 5 },
    } as RolloutObservation['target'];
    const verifying = decideRollout({ ...ready, tuning: { ...ready.tuning!, spec } });
    expect(verifying.status?.state).toBe('Verifying');
    expect(verifying.status?.message).toMatch(/before the next stage/);
    // A successful window of the stage: the next stage goes out.
    const v = obs({
      state: 'Verifying',
      now: at(400),
      status: { rollout: { ...rollout, readySince: iso(T0), windows: [] } },
    });
    v.target = { ...(v.target as object), owned: owned(5) } as RolloutObservation['target'];
    const sample = { start: iso(T0), end: iso(at(300)), ttftP90Ms: 1000, itlP90Ms: 40, requests: 500 };
    const next = decideRollout({ ...v, tuning: { ...v.tuning!, spec }, sample });
    expect(next.status?.state).toBe('Applying');
    expect(next.status?.rollout?.transitions?.at(-1)?.reason).toBe('NextStage');
    // A failed window of a stage rolls the whole change back.
    const bad = decideRollout({
      ...v,
      tuning: { ...v.tuning!, spec },
      sample: { ...sample, ttftP90Ms: 9000 },
    });
    expect(bad.status?.state).toBe('RollingBack');
  });
});

describe('Applied', () => {
  const applied = (ready: { status: 'True' | 'False'; observedGeneration?: number }, now = T0) => {
    const o = obs({
      state: 'Applied',
      now,
      status: { rollout: { baseline: owned(4), target: owned(2), appliedGeneration: 4 } },
    });
    o.target = { ...(o.target as object), owned: owned(2), ready } as RolloutObservation['target'];
    return o;
  };

  it('starts verifying once the target is ready at the applied generation', () => {
    expect(decideRollout(applied({ status: 'True', observedGeneration: 3 })).status).toBeUndefined();
    const d = decideRollout(applied({ status: 'True', observedGeneration: 4 }));
    expect(d.status).toMatchObject({ state: 'Verifying', rollout: { readySince: iso(T0), windows: [] } });
  });

  it('rolls back when the target is not ready within the timeout', () => {
    const d = decideRollout(applied({ status: 'False', observedGeneration: 4 }, at(16 * 60)));
    expect(d.status?.state).toBe('RollingBack');
    expect(d.status?.rollout?.transitions?.at(-1)?.reason).toBe('ReadyTimeout');
  });
});

describe('Verifying', () => {
  const verifying = (windows: object[] = [], policy: object = {}, failures = 0) => {
    const o = obs({
      state: 'Verifying',
      now: at(400),
      status: {
        rollout: {
          baseline: owned(4),
          target: owned(2),
          readySince: iso(T0),
          windows: windows as never,
          consecutiveFailures: failures,
        },
      },
    });
    o.target = { ...(o.target as object), owned: owned(2) } as RolloutObservation['target'];
    return {
      ...o,
      tuning: {
        ...o.tuning!,
        spec: tuningSpec({ verification: { ...tuningSpec().updatePolicy.verification, ...policy } }),
      },
    };
  };
  const sample = (over: object = {}) => ({
    start: iso(T0),
    end: iso(at(300)),
    ttftP90Ms: 1000,
    itlP90Ms: 40,
    requests: 500,
    requestRateRps: 1.7,
    ...over,
  });

  it('asks for the window once it is over', () => {
    expect(dueWindow(verifying().rec.status, 300_000, at(299))).toBeUndefined();
    expect(dueWindow(verifying().rec.status, 300_000, at(400))).toEqual({
      start: iso(T0),
      end: iso(at(300)),
    });
    expect(decideRollout(verifying()).requeueAfterMs).toBe(0);
  });

  it('verifies after the required successful windows', () => {
    const one = decideRollout({ ...verifying(), sample: sample() });
    expect(one.status?.state).toBe('Verifying');
    expect(one.status?.rollout?.windows?.[0]).toMatchObject({ outcome: 'Successful', ttftMs: { p90: 1000 } });
    const two = decideRollout({ ...verifying(one.status!.rollout!.windows!), sample: sample() });
    expect(two.status?.state).toBe('Verified');
    expect(two.outcome).toBe('Verified');
  });

  it('rolls back when the live metrics exceed the prediction interval or the SLOs', () => {
    const slow = decideRollout({ ...verifying(), sample: sample({ ttftP90Ms: 1500 }) });
    expect(slow.status?.state).toBe('RollingBack');
    expect(slow.status?.message).toMatch(/TTFT 1500 ms above the predicted 1200 ms/);
    const slo = decideRollout({
      ...verifying([], { tolerancePercent: 500 }),
      sample: sample({ itlP90Ms: 70 }),
    });
    expect(slo.status?.message).toMatch(/ITL 70 ms misses the 60 ms SLO/);
  });

  it('checks every SLO at its own percentile, and a missing one is Inconclusive', () => {
    const base = verifying([], { tolerancePercent: 500 });
    const withE2e = {
      ...base,
      tuning: {
        ...base.tuning!,
        spec: {
          ...base.tuning!.spec,
          slos: [
            ...base.tuning!.spec.slos,
            { metric: 'E2E' as const, percentile: 99 as const, maxMs: 20_000 },
          ],
        },
      },
    };
    const missing = decideRollout({ ...withE2e, sample: sample() });
    expect(missing.status?.rollout?.windows?.[0]).toMatchObject({
      outcome: 'Inconclusive',
      message: 'no data for the p99 E2E SLO',
    });
    const over = decideRollout({ ...withE2e, sample: sample({ slo: { 'E2E:99': 25_000 } }) });
    expect(over.status?.state).toBe('RollingBack');
    expect(over.status?.message).toMatch(/p99 E2E 25000 ms misses the 20000 ms SLO/);
    const ok = decideRollout({ ...withE2e, sample: sample({ slo: { 'E2E:99': 15_000 } }) });
    expect(ok.status?.rollout?.windows?.[0]?.outcome).toBe('Successful');
  });

  it('tolerates failures up to the configured count', () => {
    const d = decideRollout({
      ...verifying([], { failuresBeforeRollback: 2 }),
      sample: sample({ ttftP90Ms: 5000 }),
    });
    expect(d.status?.state).toBe('Verifying');
    expect(d.status?.rollout?.consecutiveFailures).toBe(1);
  });

  it('never counts a window without data or with too few requests as a success', () => {
    const nodata = decideRollout({
      ...verifying(),
      sample: { start: iso(T0), end: iso(at(300)), unavailable: 'Prometheus: unreachable' },
    });
    expect(nodata.status?.state).toBe('Verifying');
    expect(nodata.status?.rollout?.windows?.[0]).toMatchObject({
      outcome: 'Inconclusive',
      message: 'Prometheus: unreachable',
    });
    const few = decideRollout({ ...verifying(), sample: sample({ requests: 3 }) });
    expect(few.status?.rollout?.windows?.[0].outcome).toBe('Inconclusive');
    // Ten inconclusive windows in a row are still not Verified (Hold).
    let windows: object[] = [];
    for (let i = 0; i < 10; i++) {
      const d = decideRollout({ ...verifying(windows), sample: { ...sample(), unavailable: 'no data' } });
      expect(d.status?.state).toBe('Verifying');
      windows = d.status!.rollout!.windows!;
    }
  });

  it('handles inconclusive windows as configured: Retry counts three as a failure, Rollback rolls back', () => {
    const inc = { start: iso(T0), end: iso(at(300)), unavailable: 'no data' };
    const prior = [
      { start: iso(T0), end: iso(at(1)), outcome: 'Inconclusive' },
      { start: iso(T0), end: iso(at(2)), outcome: 'Inconclusive' },
    ];
    expect(
      decideRollout({ ...verifying(prior, { onInconclusive: 'Retry' }), sample: inc }).status?.state,
    ).toBe('RollingBack');
    expect(
      decideRollout({ ...verifying([], { onInconclusive: 'Rollback' }), sample: inc }).status?.state,
    ).toBe('RollingBack');
  });

  it('stops (without rolling back) when someone else changed the target meanwhile', () => {
    const o = verifying();
    o.target = { ...(o.target as object), owned: owned(7) } as RolloutObservation['target'];
    expect(decideRollout(o).status?.rollout?.transitions?.at(-1)?.reason).toBe('TargetChanged');
  });
});

describe('RollingBack and rollback requests', () => {
  const rolling = () =>
    obs({ state: 'RollingBack', status: { rollout: { baseline: owned(4), target: owned(2) } } });

  it('restores the recorded baseline whole and remembers the failed proposal', () => {
    expect(decideRollout(rolling()).action).toEqual({ kind: 'rollback', owned: owned(4), force: false });
    const d = decideRollout({ ...rolling(), actionResult: { ok: true, generation: 6 } });
    expect(d.status?.state).toBe('RolledBack');
    expect(d.outcome).toBe('RolledBack');
    expect(d.tuning).toMatchObject({
      lastRollbackTime: iso(T0),
      failedProposal: settingsDigest(settings(2)),
    });
  });

  it('fails with the reason when even the rollback cannot be applied', () => {
    const d = decideRollout({
      ...rolling(),
      actionResult: { ok: false, permanent: true, message: '422 invalid' },
    });
    expect(d.status?.state).toBe('Failed');
    expect(d.status?.message).toMatch(/rollback could not be applied: 422 invalid/);
  });

  it('rolls back a verified change on request, naming who asked', () => {
    const o = withSpec(obs({ state: 'Verified' }), {
      rollbackRequest: { by: 'carol', reason: 'latency spikes' },
    });
    // Terminal states stay put unless a rollback is requested.
    expect(decideRollout(obs({ state: 'Verified' })).status).toBeUndefined();
    const d = decideRollout(o);
    expect(d.status?.state).toBe('RollingBack');
    expect(d.status?.rollout?.transitions?.at(-1)).toMatchObject({
      actor: 'carol',
      reason: 'RollbackRequested',
    });
  });
});

describe('staging helpers', () => {
  it('counts GPUs moved: added or removed pods, every pod of a restarted component', () => {
    expect(gpusChanging(owned(4), owned(2))).toBe(2);
    expect(gpusChanging(owned(4), owned(4, 2))).toBe(4 + 8);
    expect(budgetGpus('50%', 8)).toBe(4);
    expect(budgetGpus(3, 8)).toBe(3);
  });

  it('steps replicas within the budget, and refuses what cannot be staged', () => {
    const s = nextStage(owned(2), owned(10), 3);
    expect('owned' in s && s.owned.components[1].replicas).toBe(5);
    expect(nextStage(owned(4), owned(4, 2), 3)).toMatchObject({
      unstageable: expect.stringMatching(/restarting worker/),
    });
    expect(nextStage(owned(4), owned(3), 8)).toMatchObject({ final: true });
  });
});

function simulatedTransition(sloMissSeconds: number) {
  return {
    changeAtSeconds: 600,
    durationSeconds: 620,
    workersStarted: 2,
    workersDrained: 2,
    requests: 900,
    ttftP90Ms: { transition: 4100, steady: 800 },
    itlP90Ms: { transition: 30, steady: 25 },
    queuedLonger: 120,
    maxExtraQueueMs: 3300,
    prefixHitRate: { transition: 0.2, steady: 0.55 },
    sloMissSeconds,
  };
}

describe('verification queries', () => {
  it('asks Prometheus for every SLO percentile beyond the p90 TTFT/ITL, from Dynamo histograms', () => {
    const q = verificationQueries({ dynamo_namespace: 'ns-a' }, 300, [
      { metric: 'TTFT', percentile: 90 },
      { metric: 'TTFT', percentile: 99 },
      { metric: 'E2E', percentile: 90 },
    ]);
    expect(Object.keys(q.slo)).toEqual(['TTFT:99', 'E2E:90']);
    expect(q.slo['E2E:90']).toBe(
      'histogram_quantile(0.9, sum by (le) (rate(dynamo_frontend_request_duration_seconds_bucket{dynamo_namespace="ns-a"}[300s])))',
    );
    expect(q.slo['TTFT:99']).toContain(
      'histogram_quantile(0.99, sum by (le) (rate(dynamo_frontend_time_to_first_token_seconds_bucket',
    );
  });
});
