import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DRIFT_POLICY,
  type DriftPolicy,
  type DriftState,
  INITIAL_DRIFT_STATE,
  stepDrift,
} from '../../../src/telemetry/drift/hysteresis.ts';
import { DRIFT_DIMENSIONS } from '../../../src/telemetry/drift/scores.ts';
import { describeMoved, driftVerdict } from '../../../src/telemetry/drift/verdict.ts';
import {
  halfOfWindow,
  profileFromRecorded,
  readRecordedWindow,
} from '../../../src/telemetry/profile/from-trace.ts';
import type { WorkloadProfile } from '../../../src/telemetry/profile/profile.ts';

const TRACES = new URL('../../fixtures/traces/', import.meta.url).pathname;
const SAMPLES = {
  conversation: `${TRACES}conversation-sample.jsonl`,
  synthetic: `${TRACES}synthetic-sample.jsonl`,
  azureCode: `${TRACES}azure-code-sample.csv`,
  azureConv: `${TRACES}azure-conv-sample.csv`,
};

async function profiles(
  path: string,
): Promise<{ whole: WorkloadProfile; a: WorkloadProfile; b: WorkloadProfile }> {
  const rec = await readRecordedWindow(path);
  return {
    whole: profileFromRecorded(rec, { name: path }),
    a: profileFromRecorded(halfOfWindow(rec, false), { name: `${path} (first half)` }),
    b: profileFromRecorded(halfOfWindow(rec, true), { name: `${path} (second half)` }),
  };
}

describe('drift scores on public traces (bundled samples)', () => {
  it('halves of one trace stay below every threshold; different workloads drift', async () => {
    const p = {
      conversation: await profiles(SAMPLES.conversation),
      synthetic: await profiles(SAMPLES.synthetic),
      azureCode: await profiles(SAMPLES.azureCode),
      azureConv: await profiles(SAMPLES.azureConv),
    };
    for (const [name, x] of Object.entries(p)) {
      const v = driftVerdict(x.a, x.b);
      expect(v.drifted, `${name} halves: ${describeMoved(v).join('; ')}`).toBe(false);
      expect(v.level, name).toBeLessThan(0.9);
    }
    const cross = [
      [p.conversation, p.synthetic, ['input_tokens', 'output_tokens', 'prefix_reuse']],
      [p.conversation, p.azureCode, ['input_tokens', 'output_tokens', 'burstiness']],
      [p.conversation, p.azureConv, ['input_tokens', 'output_tokens', 'rate_level']],
      [p.azureCode, p.azureConv, ['output_tokens', 'burstiness', 'rate_level', 'input_tokens']],
    ] as const;
    for (const [x, y, moved] of cross) {
      const v = driftVerdict(x.whole, y.whole);
      expect(v.drifted).toBe(true);
      expect([...v.moved].sort()).toEqual([...moved].sort());
      // Well above: the largest score is over three times its threshold (halves stay under 0.9 of theirs).
      expect(v.level).toBeGreaterThan(3);
    }
  });

  it('compares nothing it cannot measure, and names what moved and by how much', async () => {
    const conv = await profiles(SAMPLES.conversation);
    const az = await profiles(SAMPLES.azureCode);
    const v = driftVerdict(conv.whole, az.whole);
    expect(v.scores.prefix_reuse).toBeNull();
    expect(v.scores.sessions).toBeNull();
    expect(v.notes).toContain('prefix reuse: unknown on at least one side, not compared');
    const text = describeMoved(v);
    expect(text[0]).toMatch(/^output_tokens 363 -> 13 tokens \(p50\) \(score \d\.\d\d >= 0\.6\)$/);
    expect(Object.keys(v.scores)).toEqual([...DRIFT_DIMENSIONS]);
    // A profile against itself: all zero.
    const same = driftVerdict(conv.whole, conv.whole);
    expect(same.level).toBe(0);
    expect(same.drifted).toBe(false);
  });

  it('takes thresholds from the caller', async () => {
    const conv = await profiles(SAMPLES.conversation);
    const v = driftVerdict(conv.a, conv.b, { input_tokens: 0.01 });
    expect(v.moved).toContain('input_tokens');
  });
});

describe('drift hysteresis', () => {
  const policy: DriftPolicy = { triggerLevel: 1, rearmLevel: 0.7, dwellMs: 100, minIntervalMs: 1000 };
  const run = (levels: [number, number][], start: DriftState = INITIAL_DRIFT_STATE) => {
    let s = start;
    return levels.map(([t, level]) => {
      const r = stepDrift(s, level, t, policy);
      s = r.state;
      return r.phase;
    });
  };

  it('triggers once the level stays up for the dwell time, not before', () => {
    expect(
      run([
        [0, 1.5],
        [50, 1.2],
        [99, 1.1],
        [100, 1.1],
      ]),
    ).toEqual(['Dwelling', 'Dwelling', 'Dwelling', 'Triggered']);
    // A dip below the trigger level restarts the dwell.
    expect(
      run([
        [0, 1.5],
        [60, 0.9],
        [120, 1.5],
        [200, 1.5],
        [220, 1.5],
      ]),
    ).toEqual(['Dwelling', 'Stable', 'Dwelling', 'Dwelling', 'Triggered']);
  });

  it('re-arms only below the re-arm level', () => {
    const phases = run([
      [0, 2],
      [100, 2],
      [200, 2],
      [300, 0.8],
      [400, 1.2],
      [500, 0.69],
      [600, 1.2],
      [1050, 1.2],
      [1200, 1.2],
    ]);
    expect(phases).toEqual([
      'Dwelling',
      'Triggered',
      'Disarmed',
      'Disarmed',
      'Disarmed',
      'Stable',
      'Dwelling',
      // Long enough above, but within the minimum interval of the trigger at 100.
      'Suppressed',
      'Triggered',
    ]);
  });

  it('a level hovering at the threshold triggers once', () => {
    const levels: [number, number][] = [];
    for (let t = 0; t < 100_000; t += 10) levels.push([t, t % 20 === 0 ? 1.01 : 0.99]);
    // Every other sample is below the trigger level, so the dwell never completes: no trigger at all.
    expect(run(levels).filter((p) => p === 'Triggered')).toHaveLength(0);
    const steady: [number, number][] = [];
    for (let t = 0; t < 100_000; t += 10) steady.push([t, 0.95 + 0.1 * ((t / 10) % 3 === 0 ? 1 : 0.6)]);
    // Above 1 for good (1.01-1.05), dipping never below 0.7: one trigger.
    expect(run(steady).filter((p) => p === 'Triggered')).toHaveLength(1);
  });

  it('NaN never triggers, and the defaults are sane', () => {
    expect(
      run([
        [0, Number.NaN],
        [1000, Number.NaN],
      ]),
    ).toEqual(['Stable', 'Stable']);
    expect(DEFAULT_DRIFT_POLICY.rearmLevel).toBeLessThan(DEFAULT_DRIFT_POLICY.triggerLevel);
  });
});
