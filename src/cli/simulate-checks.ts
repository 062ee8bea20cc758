import { SimulationConfigSchema } from '../config/schema.ts';
import { UsageError } from './errors.ts';
import { fieldAt } from './schema-fields.ts';
import type { ConfigSources } from './sources.ts';

/**
 * Settings that contradict each other or would be silently ignored by the run the user asked for. Each is
 * refused with both settings named as the user gave them (flag or file field) and the reason; a setting that
 * only makes sense with another one says what it needs. Checked on the merged flags and file before the
 * schema fills in defaults, so "given" means given.
 */
interface Rule {
  /** The setting that would be ignored or contradicted. */
  a: string;
  /** The setting it depends on or contradicts. */
  b: string;
  /** When the pair is a problem, given the merged configuration (values default as the schema says). */
  when: (get: (path: string) => unknown) => boolean;
  /** Why, after "A conflicts with B: ". */
  why: string;
  /** What A needs when B was not given (B at its default is the problem): as a flag, and as a file field. */
  needs?: [flag: string, field: string];
}

const SGLANG_ONLY = [
  'schedulePolicy',
  'maxPrefillTokens',
  'chunkedPrefillSize',
  'clipMaxNewTokens',
  'scheduleConservativeness',
];
const VLLM_ONLY = ['maxNumBatchedTokens', 'enableChunkedPrefill'];
const OFFLOAD = ['g2Blocks', 'g2Gbps', 'g3Blocks', 'g3Gbps', 'offloadPolicy'];
const HARDWARE_DETAIL = [
  'dtype',
  'kvDtype',
  'gpuMemoryUtilization',
  'maxModelLen',
  'expertParallel',
  'tier',
  'gpusFile',
  'modelsFile',
  'calibration',
];

const isHardware = (get: (p: string) => unknown) => get('timing.model') === 'hardware';

const RULES: Rule[] = [
  {
    a: 'workers',
    b: 'disaggregation',
    when: (get) => get('disaggregation') !== undefined,
    why: 'disaggregated serving sizes each role; use --prefill-workers and --decode-workers',
  },
  {
    a: 'tensorParallelSize',
    b: 'disaggregation',
    when: (get) => get('disaggregation') !== undefined,
    why: 'disaggregated serving sizes each role; use --prefill-tp and --decode-tp',
  },
  {
    a: 'workload.synthetic',
    b: 'workload.trace',
    when: (get) => get('workload.trace') !== undefined,
    why: 'a trace replays its own requests; synthetic settings describe generated ones: give one or the other',
  },
  {
    a: 'workload.traceBlockSize',
    b: 'workload.synthetic',
    when: (get) => get('workload.synthetic') !== undefined,
    why: 'it describes the hash ids of a trace; synthetic traffic uses --block-size',
  },
  {
    a: 'workload.traceFormat',
    b: 'workload.synthetic',
    when: (get) => get('workload.synthetic') !== undefined,
    why: 'it says how to read a trace, and synthetic traffic reads none',
  },
  ...['requestRate', 'arrival'].map(
    (k): Rule => ({
      a: `workload.synthetic.${k}`,
      b: 'workload.concurrency',
      when: (get) => get('workload.concurrency') !== undefined,
      why: 'a closed loop sends the next request when one completes; arrival rates and processes are for open-loop traffic',
    }),
  ),
  {
    a: 'workload.arrivalSpeedupRatio',
    b: 'workload.concurrency',
    when: (get) => get('workload.concurrency') !== undefined,
    why: 'a closed loop ignores arrival times',
  },
  {
    a: 'workload.synthetic.requestRate',
    b: 'workload.synthetic.arrival',
    when: (get) => get('workload.synthetic.arrival') === 'burst',
    why: 'burst arrivals send every request at once',
  },
  {
    a: 'workload.synthetic.burstiness',
    b: 'workload.synthetic.arrival',
    when: (get) => get('workload.synthetic.arrival') !== 'gamma',
    why: 'burstiness is the shape of gamma arrivals',
    needs: ['--arrival gamma', 'workload.synthetic.arrival: gamma'],
  },
  {
    a: 'workload.synthetic.numPrefixGroups',
    b: 'workload.synthetic.sharedPrefixRatio',
    when: (get) => get('workload.synthetic.sharedPrefixRatio') === 0,
    why: 'with no shared share of the prompt, prefix groups share nothing',
    needs: ['--shared-prefix-ratio above 0', 'workload.synthetic.sharedPrefixRatio above 0'],
  },
  {
    a: 'workload.synthetic.sharedPrefixRatio',
    b: 'workload.synthetic.numPrefixGroups',
    when: (get) =>
      (get('workload.synthetic.sharedPrefixRatio') as number) > 0 &&
      get('workload.synthetic.numPrefixGroups') === 0,
    why: 'prompts share prefixes only within a prefix group',
    needs: ['--num-prefix-groups 1 or more', 'workload.synthetic.numPrefixGroups 1 or more'],
  },
  {
    a: 'workload.synthetic.interTurnDelayMs',
    b: 'workload.synthetic.turnsPerSession',
    when: (get) => get('workload.synthetic.turnsPerSession') === 1,
    why: 'think time separates the turns of a session',
    needs: ['--turns-per-session 2 or more', 'workload.synthetic.turnsPerSession 2 or more'],
  },
  ...SGLANG_ONLY.map(
    (k): Rule => ({
      a: `engine.${k}`,
      b: 'engine.engine',
      when: (get) => get('engine.engine') !== 'sglang',
      why: "it is a setting of SGLang's scheduler, which vLLM's does not have",
      needs: ['--engine sglang', 'engine.engine: sglang'],
    }),
  ),
  ...VLLM_ONLY.map(
    (k): Rule => ({
      a: `engine.${k}`,
      b: 'engine.engine',
      when: (get) => get('engine.engine') === 'sglang',
      why: "it is a setting of vLLM's scheduler; SGLang's uses --max-prefill-tokens and --chunked-prefill-size",
    }),
  ),
  ...OFFLOAD.map(
    (k): Rule => ({
      a: `engine.${k}`,
      b: 'engine.engine',
      when: (get) => get('engine.engine') === 'sglang',
      why: 'KV offload tiers are modelled for vLLM only',
    }),
  ),
  ...OFFLOAD.filter((k) => k !== 'g2Blocks' && k !== 'g3Blocks').map(
    (k): Rule => ({
      a: `engine.${k}`,
      b: 'engine.g2Blocks',
      when: (get) => get('engine.g2Blocks') === 0,
      why: 'it configures the host-memory KV tier, which is off',
      needs: ['--g2-blocks N', 'engine.g2Blocks above 0'],
    }),
  ),
  {
    a: 'engine.g2Blocks',
    b: 'engine.enablePrefixCaching',
    when: (get) => (get('engine.g2Blocks') as number) > 0 && get('engine.enablePrefixCaching') === false,
    why: 'offload tiers keep prompt blocks for prefix reuse, which prefix caching off never looks up',
  },
  {
    a: 'engine.kvBytesPerToken',
    b: 'disaggregation',
    when: (get) => get('disaggregation') === undefined && !((get('engine.g2Blocks') as number) > 0),
    why: 'KV bytes per token size disaggregated transfers and offload tiers, and this run has neither',
    needs: ['--disagg or --g2-blocks N', 'a disaggregation section or engine.g2Blocks above 0'],
  },
  ...['overlapWeight', 'overlapCredit', 'temperature'].map(
    (k): Rule => ({
      a: `router.${k}`,
      b: 'router.mode',
      when: (get) => get('router.mode') !== 'kv',
      why: "it is a setting of the KV router's cost",
      needs: ['--router kv', 'router.mode: kv'],
    }),
  ),
  ...['gpu', 'model'].map(
    (k): Rule => ({
      a: `hardware.${k}`,
      b: 'timing.model',
      when: (get) => !isHardware(get),
      why: 'the polynomial and fixed timing models price every pass the same on any GPU and model',
    }),
  ),
  ...HARDWARE_DETAIL.map(
    (k): Rule => ({
      a: `hardware.${k}`,
      b: 'timing.model',
      when: (get) => !isHardware(get),
      why: 'it is a setting of hardware timing',
      needs: ['--gpu and --model (hardware timing)', 'hardware.gpu and hardware.model (hardware timing)'],
    }),
  ),
  ...['prefillMs', 'decodeMs'].map(
    (k): Rule => ({
      a: `timing.${k}`,
      b: 'timing.model',
      when: (get) => get('timing.model') !== 'fixed',
      why: 'it is a setting of the fixed timing model',
      needs: ['timing.model: fixed in a config file', 'timing.model: fixed'],
    }),
  ),
  {
    a: 'startupTimeS',
    b: 'planner',
    when: (get) => get('planner') === undefined,
    why: "a worker's cold start matters only when the Planner adds workers",
    needs: ['--planner FILE', 'a planner section'],
  },
];

/** Reads a dotted path of the merged configuration, falling back to the schema's default. */
function reader(merged: Record<string, unknown>): (path: string) => unknown {
  return (path) => {
    let node: unknown = merged;
    for (const part of path.split('.')) {
      if (typeof node !== 'object' || node === null) {
        node = undefined;
        break;
      }
      node = (node as Record<string, unknown>)[part];
    }
    return node !== undefined ? node : fieldAt(SimulationConfigSchema, path)?.default;
  };
}

/** Throws a UsageError for the first contradiction or ignored setting in the merged configuration. */
export function checkSimulateConflicts(merged: Record<string, unknown>, sources: ConfigSources): void {
  const get = reader(merged);
  const present = (path: string) => {
    let node: unknown = merged;
    for (const part of path.split('.')) {
      if (typeof node !== 'object' || node === null) return false;
      node = (node as Record<string, unknown>)[part];
    }
    return node !== undefined;
  };
  for (const r of RULES) {
    if (!present(r.a) || !r.when(get)) continue;
    const a = sources.describe(r.a) ?? `field '${r.a}'`;
    const b = present(r.b) ? sources.describe(r.b) : undefined;
    if (b !== undefined) throw new UsageError(`${a} conflicts with ${b}: ${r.why}`);
    const needs = r.needs ? r.needs[sources.flag(r.a) !== undefined ? 0 : 1] : r.b;
    throw new UsageError(`${a} needs ${needs}: ${r.why}`);
  }
}
