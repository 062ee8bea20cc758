/** The hand-written parts of docs/fidelity.md: the analysis of differences, the method, what is pending. */
import type { MetricKey } from './results.ts';

/** Why a metric of a case differs from the reference by more than the tolerance, if known. */
export function explain(caseId: string, metric: MetricKey): string | null {
  void caseId;
  void metric;
  return null;
}

export const ANALYSIS = '## Analysis\n\nTODO';
export const METHOD = '## Method\n\nTODO';
export const PENDING = '## Pending\n\nTODO';
