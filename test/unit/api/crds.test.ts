import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openApiSchema } from '../../../src/api/crd.ts';
import {
  DeploymentTuningSpecSchema,
  parseDuration,
  renderCrdFiles,
  TuningRecommendationSpecSchema,
} from '../../../src/api/index.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('generated CRDs', () => {
  it('match the checked-in files (run `npm run generate:crds` after changing src/api/)', async () => {
    for (const [file, text] of await renderCrdFiles()) {
      expect(readFileSync(`${ROOT}${file}`, 'utf8'), file).toBe(text);
    }
  });

  it('are structural: union types are refused', () => {
    expect(() => openApiSchema(z.object({ a: z.union([z.string(), z.number()]) }))).toThrow(/anyOf/);
  });

  it('turn open maps into preserve-unknown-fields and drop zod integer bounds', () => {
    const s = openApiSchema(z.object({ a: z.record(z.string(), z.unknown()), n: z.number().int() }));
    expect(s).toEqual({
      type: 'object',
      properties: {
        a: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        n: { type: 'integer' },
      },
      required: ['a', 'n'],
    });
  });
});

describe('DeploymentTuning spec', () => {
  it('fills the same defaults as the CRD', () => {
    const spec = DeploymentTuningSpecSchema.parse({
      targetRef: { name: 'llama' },
      workload: { source: { configMap: { name: 'traces', key: 'trace.jsonl' } } },
    });
    expect(spec.targetRef.kind).toBe('DynamoGraphDeployment');
    expect(spec.updatePolicy.mode).toBe('Off');
    expect(spec.gpuBudget.mode).toBe('Auto');
    expect(spec.guardrails).toEqual({ minImprovementPercent: 10, minProposalInterval: '1h' });
    expect(spec.workload.traceBlockSize).toBe(512);
    expect(spec.historyLimit).toBe(10);
  });

  it('rejects percentiles outside 50/90/99 and bad durations', () => {
    const base = {
      targetRef: { name: 'llama' },
      workload: { source: { file: { path: '/traces/a.jsonl' } }, lookback: '1h' },
    };
    expect(DeploymentTuningSpecSchema.safeParse(base).success).toBe(true);
    expect(
      DeploymentTuningSpecSchema.safeParse({ ...base, slos: [{ metric: 'TTFT', percentile: 95, maxMs: 1 }] })
        .success,
    ).toBe(false);
    expect(
      DeploymentTuningSpecSchema.safeParse({ ...base, workload: { ...base.workload, lookback: 'an hour' } })
        .success,
    ).toBe(false);
  });

  it('parses durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('0s')).toBe(0);
    expect(() => parseDuration('5d')).toThrow();
  });
});

describe('TuningRecommendation spec', () => {
  it('requires the evidence fields', () => {
    const r = TuningRecommendationSpecSchema.safeParse({ deploymentTuning: 'x' });
    expect(r.success).toBe(false);
  });
});
