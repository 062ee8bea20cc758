import type { CalibrationStatus } from '../../api/index.ts';
import { CALIBRATION_METRICS, tooFewObservations } from '../../telemetry/calibration/calibrate.ts';
import { DRIFT_DIMENSIONS } from '../../telemetry/drift/scores.ts';
import type { OperatorMetrics } from '../metrics.ts';
import type { SweepJobResult } from '../sweep/job.ts';
import type { DriftDecision } from './drift.ts';

/**
 * Live calibration and drift as the DeploymentTuning's status and the operator's metrics show them. The
 * headline error (`errorPercent`) is the model's as sweeps use it: with the correction when it was applied,
 * without it otherwise; the rollout's automatic guardrail reads it.
 */

const pct = (v: number) => Number((v * 100).toFixed(2));
const clampPct = (v: number) => Math.max(-1e6, Math.min(1e6, pct(v)));

export function calibrationStatus(r: SweepJobResult, time: string): CalibrationStatus | undefined {
  const c = r.calibration;
  if (!c) return undefined;
  const used = c.applied && c.correction ? c.correction.errors : c.errors;
  let worst = 0;
  for (const k of CALIBRATION_METRICS)
    if (used[k] !== undefined) worst = Math.max(worst, Math.abs(used[k] as number));
  const metrics = CALIBRATION_METRICS.filter((k) => c.errors[k] !== undefined).map((k) => ({
    metric: k,
    observed: Number((c.observed[k] as number).toFixed(4)),
    predicted: Number((c.predicted[k] as number).toFixed(4)),
    errorPercent: clampPct(c.errors[k] as number),
    ...(c.correction?.errors[k] !== undefined && {
      correctedErrorPercent: clampPct(c.correction.errors[k] as number),
    }),
  }));
  const endMs = r.profile.window.end_ms;
  const startMs = r.profile.window.start_ms;
  const epoch = endMs > 1e12;
  return {
    time,
    ...(epoch && {
      windowStartTime: new Date(startMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      windowEndTime: new Date(endMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    }),
    errorPercent: Math.min(1e6, pct(worst)),
    meanAbsErrorPercent: Math.min(1e6, pct(c.meanAbsError)),
    metrics,
    ...(c.correction && {
      correction: {
        prefill: c.correction.factors.prefill,
        decode: c.correction.factors.decode,
        bounded: c.correction.bounded,
        applied: c.applied,
        meanAbsErrorPercent: Math.min(1e6, pct(c.correction.meanAbsError)),
      },
    }),
    message: `${
      c.correction?.bounded
        ? 'The correction hit its bound and was not applied: the model is off by more than a scale explains.'
        : c.applied
          ? `Sweeps price candidates with prefill x${c.correction?.factors.prefill} and decode x${c.correction?.factors.decode}.`
          : c.correction?.factors.prefill === 1 && c.correction.factors.decode === 1
            ? 'No correction lowers the error: sweeps use the model as it is.'
            : 'No correction applied.'
    }${leftOut(r)}`.slice(0, 1024),
  };
}

/** The percentiles the window had too few observations for (calibrate.ts, MIN_TAIL_SAMPLES), said once. */
function leftOut(r: SweepJobResult): string {
  const few = tooFewObservations(r.profile);
  if (few.length === 0) return '';
  const list = few.map((f) => `${f.metric} (${f.count}; needs ${f.needed})`).join(', ');
  return ` Not compared, too few observations in the window: ${list}.`;
}

export function recordCalibration(
  m: OperatorMetrics,
  namespace: string,
  name: string,
  c: SweepJobResult['calibration'],
): void {
  if (!c) return;
  for (const k of CALIBRATION_METRICS) {
    const labels = { namespace, name, metric: k };
    if (c.errors[k] === undefined) continue;
    m.calibrationError.set(labels, pct(c.errors[k] as number));
    if (c.correction?.errors[k] !== undefined)
      m.calibrationCorrectedError.set(labels, pct(c.correction.errors[k] as number));
    m.observed.set(labels, c.observed[k] as number);
    const predicted = c.applied && c.correction ? c.correction.predicted[k] : c.predicted[k];
    if (predicted !== undefined) m.predicted.set(labels, predicted);
  }
  if (c.correction) {
    m.calibrationCorrection.set({ namespace, name, part: 'prefill' }, c.correction.factors.prefill);
    m.calibrationCorrection.set({ namespace, name, part: 'decode' }, c.correction.factors.decode);
  }
}

export function recordDrift(m: OperatorMetrics, namespace: string, name: string, d: DriftDecision): void {
  m.driftLevel.set({ namespace, name }, Math.min(1e6, d.verdict.level));
  for (const dim of DRIFT_DIMENSIONS) {
    const labels = { namespace, name, dimension: dim };
    m.driftThreshold.set(labels, d.verdict.thresholds[dim]);
    const v = d.verdict.scores[dim];
    if (v === null) m.driftScore.remove(labels);
    else m.driftScore.set(labels, Math.min(1e6, v));
  }
}
