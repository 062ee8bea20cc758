import { describe, expect, it } from 'vitest';
import { baselineSpace, settingsOf, sweepSpace } from '../../../src/operator/sweep/mapping.ts';
import { readDynamoBaseline } from '../../../src/operator/target/dynamo.ts';
import { candidateConfig } from '../../../src/sweep/evaluate.ts';
import { enumerateCandidates, SearchSpaceSchema } from '../../../src/sweep/space.ts';

/** A v1alpha1 graph with one aggregated worker running `args`, and optionally a Planner. */
const graph = (
  args: string,
  opts: { gpus?: string; framework?: string; planner?: boolean; prefill?: boolean } = {},
) => ({
  metadata: { name: 'g' },
  spec: {
    ...(opts.framework && { backendFramework: opts.framework }),
    services: {
      Frontend: { componentType: 'frontend' },
      ...(opts.planner && { Planner: { componentType: 'planner' } }),
      Worker: {
        componentType: 'worker',
        replicas: 2,
        resources: { limits: { gpu: opts.gpus ?? '8' } },
        extraPodSpec: { mainContainer: { args: [args] } },
      },
      ...(opts.prefill && {
        Prefill: {
          componentType: 'worker',
          subComponentType: 'prefill',
          resources: { limits: { gpu: opts.gpus ?? '8' } },
          extraPodSpec: { mainContainer: { args: [args] } },
        },
      }),
    },
  },
});

const read = (args: string, opts = {}) => readDynamoBaseline(graph(args, opts), ['h200_sxm']);

describe('target adapter: backend, data parallelism, expert parallelism, speculative decoding', () => {
  it('takes the backend from spec.backendFramework (trtllm included), else from the command', () => {
    const t = read('python3 -m dynamo.vllm --model m', { framework: 'trtllm' });
    if (!('settings' in t)) throw new Error(t.error);
    expect(t.settings.engine?.backend).toBe('TRTLLM');
    const c = read('python3 -m dynamo.trtllm --model m');
    expect('settings' in c && c.settings.engine?.backend).toBe('TRTLLM');
  });

  it('reads DP ranks, EP and MTP into the baseline: GPUs per worker are TP x DP', () => {
    const r = read(
      `python3 -m dynamo.vllm --model deepseek-ai/DeepSeek-V3 -tp 2 --data-parallel-size 4 --enable-expert-parallel --speculative-config {"method":"deepseek_mtp","num_speculative_tokens":2}`,
    );
    if (!('settings' in r)) throw new Error(r.error);
    expect(r.settings.aggregated).toEqual({
      workers: 2,
      tensorParallel: 2,
      dataParallel: 4,
      gpusPerWorker: 8,
    });
    expect(r.settings.engine).toMatchObject({
      backend: 'vLLM',
      expertParallel: true,
      speculative: { method: 'deepseek_mtp', draftTokens: 2 },
    });
    expect(r.settings.gpus).toBe(16);
    const sg = read(
      'python3 -m dynamo.sglang --tp 8 --speculative-algorithm EAGLE --speculative-num-steps 3',
    );
    expect('settings' in sg && sg.settings.engine?.speculative).toEqual({ method: 'eagle', draftTokens: 3 });
  });

  it('reads a JSON argument with spaces, as an exec-form element or quoted in a shell command line', () => {
    const json = '{"method": "deepseek_mtp", "num_speculative_tokens": 2}';
    const execForm = {
      ...graph(''),
      spec: {
        services: {
          Frontend: { componentType: 'frontend' },
          Worker: {
            componentType: 'worker',
            replicas: 1,
            resources: { limits: { gpu: '1' } },
            extraPodSpec: {
              mainContainer: {
                command: ['python3', '-m', 'dynamo.vllm'],
                args: ['--model', 'm', '--speculative-config', json],
              },
            },
          },
        },
      },
    };
    for (const t of [
      readDynamoBaseline(execForm, ['h200_sxm']),
      read(`python3 -m dynamo.vllm --model m --speculative-config '${json}'`),
    ]) {
      if (!('settings' in t)) throw new Error(t.error);
      expect(t.settings.engine?.speculative).toEqual({ method: 'deepseek_mtp', draftTokens: 2 });
    }
  });

  it('the baseline and the recommendations keep the parallel layout and MTP', () => {
    const r = read(
      `python3 -m dynamo.vllm -tp 2 -dp 4 --enable-expert-parallel --speculative-config {"method":"mtp","num_speculative_tokens":1}`,
    );
    if (!('settings' in r)) throw new Error(r.error);
    const { space, budget } = baselineSpace(r.settings);
    const { candidates } = enumerateCandidates(space, budget);
    expect(candidates).toHaveLength(1);
    const c = candidates[0];
    expect(c).toMatchObject({ tensorParallel: 2, dataParallel: 4, expertParallel: true, workers: 2 });
    expect(c.engine.nextn).toBe(1);
    const cfg = candidateConfig(c, {
      timing: { model: 'polynomial', prefillMs: 10, decodeMs: 5 },
      traceBlockSize: 512,
      arrivalSpeedupRatio: 1,
      seed: 0,
      prices: {},
      slos: [],
    });
    expect(cfg.dataParallelSize).toBe(4);
    expect(cfg.engine.nextn).toBe(1);
    const back = settingsOf(c);
    expect(back.aggregated).toEqual(r.settings.aggregated);
    expect(back.engine).toMatchObject({ expertParallel: true, speculative: { draftTokens: 1 } });
    // A tuning may search DP and draft tokens; TRT-LLM is a backend it may try.
    const searched = sweepSpace(
      {
        topologies: ['Aggregated'],
        routers: ['RoundRobin'],
        optimizer: 'Grid',
        dataParallel: [1, 2],
        speculativeDraftTokens: [0, 2],
        backends: ['vLLM', 'TRTLLM'],
      },
      r.settings,
    );
    expect(searched.dataParallel).toEqual([1, 2]);
    expect(searched.engine.nextn).toEqual([0, 2]);
    expect(searched.engine.engines).toEqual(['vllm', 'trtllm']);
  });

  it('reports what the simulator does not model, naming it', () => {
    const cases: [string, object, RegExp][] = [
      ['python3 -m dynamo.vllm -tp 4 --pipeline-parallel-size 2', {}, /pipeline parallelism/],
      ['python3 -m dynamo.vllm --enable-lora', {}, /LoRA/],
      [
        `python3 -m dynamo.vllm --speculative-config {"method":"ngram","num_speculative_tokens":3}`,
        {},
        /method 'ngram'/,
      ],
      [
        `python3 -m dynamo.vllm --speculative-config {"method":"mtp","num_speculative_tokens":8}`,
        {},
        /8 draft tokens/,
      ],
      ['python3 -m dynamo.vllm -tp 2 -dp 4', { planner: true }, /data-parallel ranks under the Planner/],
      ['python3 -m dynamo.vllm -tp 2 -dp 4', { prefill: true }, /data-parallel ranks with disaggregated/],
    ];
    for (const [args, opts, re] of cases) {
      const r = read(args, opts);
      expect(r, args).toHaveProperty('reason', 'UnsupportedFeature');
      expect('error' in r && r.error, args).toMatch(re);
    }
  });
});

describe('sweep space: data parallelism and MTP', () => {
  it('counts TP x DP GPUs per worker and searches DP and draft tokens', () => {
    const space = SearchSpaceSchema.parse({
      tensorParallel: [2],
      dataParallel: [1, 2],
      workers: 'all',
      router: { modes: ['round-robin'] },
      engine: { nextn: [0, 2] },
    });
    const { candidates, pruned } = enumerateCandidates(space, [{ type: 'h200', count: 4 }]);
    const dp2 = candidates.filter((c) => c.dataParallel === 2);
    expect(dp2.map((c) => c.workers)).toEqual([1, 1]);
    expect(
      candidates
        .filter((c) => !c.dataParallel)
        .map((c) => c.workers)
        .sort(),
    ).toEqual([1, 1, 2, 2]);
    expect(new Set(candidates.map((c) => c.engine.nextn ?? 0))).toEqual(new Set([0, 2]));
    expect(pruned).toEqual([]);
    const planned = SearchSpaceSchema.parse({ ...space, planner: { base: {} } });
    expect(enumerateCandidates(planned, [{ type: 'h200', count: 4 }]).pruned).toContainEqual({
      label: 'h200 TP2xDP2',
      reason: 'data-parallel ranks under the Planner',
    });
  });
});
