import { z } from 'zod';
import { type CrdDefinition, cel, intOrString, listMap, type PrinterColumn } from './crd.ts';

/**
 * NVIDIA Dynamo's DynamoGraphDeployment (DGD) and DynamoGraphDeploymentScalingAdapter (DGDSA), as far as
 * servetune reads or writes them. Objects are Dynamo's, so every level keeps unknown fields; the CRDs generated
 * from these schemas are stand-ins for tests, the demo and kind (`config/dev/`), and real clusters install
 * Dynamo's own.
 *
 * Faithful to Dynamo's API (`deploy/operator/api/{v1alpha1,v1beta1}/` in ai-dynamo/dynamo) for those fields:
 * - `v1beta1` (stored): `spec.components`, a list keyed by `name` (`listType=map`, at most 25, names unique
 *   case-insensitively, at most one `epp`), each with `type`, `replicas`, `podTemplate` (a pod template whose
 *   container `main` carries the engine's command line, env and GPU limits; containers and env are lists keyed
 *   by `name`, as in Kubernetes' own schema), `multinode`, `scalingAdapter`; status `state`, `conditions`
 *   (keyed by `type`), `components` (replica status per component), `observedGeneration`;
 * - `v1alpha1` (served, deprecated): `spec.services`, a map of services with `componentType`,
 *   `subComponentType`, `replicas`, `resources`, `envs`, `extraPodSpec.mainContainer`; status `services`;
 * - the DGDSA with its scale subresource (`.spec.replicas`, `.status.replicas`, `.status.selector`) in both
 *   versions (`dgdRef.componentName` in v1beta1, `dgdRef.serviceName` in v1alpha1).
 *
 * Not reproduced: Dynamo's conversion webhook. An object keeps the shape it was written in whichever version
 * it is read through (both versions keep unknown spec fields), so readers accept both shapes
 * (`graphComponents`).
 */

const QuantityMap = z.record(z.string(), z.string()).describe('Resource quantities (e.g. gpu: "2").');

const EnvVar = z.looseObject({
  name: z.string().min(1).max(256),
  value: z.string().optional(),
  valueFrom: z.looseObject({}).optional(),
});

// ---------------------------------------------------------------------------------------------------------
// v1alpha1 (deprecated): spec.services

export const DynamoServiceSchema = z
  .looseObject({
    componentType: z.string().max(64).optional().describe('frontend, worker, planner, ...'),
    subComponentType: z.string().max(64).optional().describe('prefill or decode for disaggregated workers.'),
    replicas: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional()
      .describe(
        'Pods of this service; owned by its DynamoGraphDeploymentScalingAdapter when one is enabled.',
      ),
    resources: z
      .looseObject({
        requests: QuantityMap.optional(),
        limits: QuantityMap.optional(),
      })
      .optional()
      .describe('Per-pod resources; limits.gpu is GPUs per pod.'),
    envs: z.array(EnvVar).optional().describe('Environment of the main container.'),
    extraPodSpec: z
      .looseObject({
        nodeSelector: z.record(z.string(), z.string()).optional(),
        mainContainer: z
          .looseObject({
            image: z.string().optional(),
            command: z.array(z.string()).optional(),
            args: z.array(z.string()).optional(),
          })
          .optional(),
      })
      .optional()
      .describe('Pod template overrides; mainContainer args carry engine and router flags.'),
    multinode: z.looseObject({ nodeCount: z.number().int().min(1).optional() }).optional(),
    scalingAdapter: z
      .looseObject({ enabled: z.boolean().optional() })
      .optional()
      .describe('When enabled, a DynamoGraphDeploymentScalingAdapter owns replicas.'),
  })
  .describe('One service (component) of the graph.');

export const DynamoGraphDeploymentSpecSchema = z
  .looseObject({
    services: z.record(z.string(), DynamoServiceSchema).default({}).describe('Services by name.'),
    backendFramework: z.enum(['sglang', 'vllm', 'trtllm']).optional().describe('sglang, vllm or trtllm.'),
  })
  .describe('The services of a Dynamo inference graph.');

const Condition = z.looseObject({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().max(1024).optional(),
  message: z.string().max(32768).optional(),
  lastTransitionTime: z.string().optional(),
  observedGeneration: z.number().int().min(0).optional(),
});

const ServiceReplicaStatus = z.looseObject({
  componentKind: z.string().optional(),
  componentName: z.string().optional(),
  componentNames: z.array(z.string()).optional(),
  replicas: z.number().int().min(0).optional(),
  updatedReplicas: z.number().int().min(0).optional(),
  readyReplicas: z.number().int().min(0).optional(),
  availableReplicas: z.number().int().min(0).optional(),
});

export const DynamoGraphDeploymentStatusSchema = z
  .looseObject({
    state: z.string().max(64).optional().describe('initializing, pending, successful or failed.'),
    observedGeneration: z.number().int().min(0).optional(),
    conditions: listMap(z.array(Condition), 'type').optional(),
    services: z.record(z.string(), ServiceReplicaStatus).optional().describe('Replica status per service.'),
  })
  .describe('Written by the Dynamo operator.');

// ---------------------------------------------------------------------------------------------------------
// v1beta1 (stored): spec.components

const Container = z.looseObject({
  name: z.string().min(1).max(253),
  image: z.string().optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: listMap(z.array(EnvVar), 'name').optional(),
  resources: z
    .looseObject({
      limits: z.record(z.string(), intOrString(z.union([z.number(), z.string()]))).optional(),
      requests: z.record(z.string(), intOrString(z.union([z.number(), z.string()]))).optional(),
    })
    .optional(),
});

export const COMPONENT_TYPES = ['frontend', 'worker', 'prefill', 'decode', 'planner', 'epp'] as const;

export const DynamoComponentSchema = z
  .looseObject({
    name: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/)
      .describe('Stable logical name of the component within the graph.'),
    type: z.enum(COMPONENT_TYPES).optional().describe('frontend, worker, prefill, decode, planner or epp.'),
    replicas: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional()
      .describe(
        'Pods of this component; owned by its DynamoGraphDeploymentScalingAdapter when scalingAdapter is set.',
      ),
    podTemplate: z
      .looseObject({
        metadata: z.looseObject({}).optional(),
        spec: z
          .looseObject({
            containers: listMap(z.array(Container), 'name').optional(),
            nodeSelector: z.record(z.string(), z.string()).optional(),
          })
          .optional(),
      })
      .optional()
      .describe('Pod template; the container named "main" runs the component.'),
    multinode: z.looseObject({ nodeCount: z.number().int().min(1).optional() }).optional(),
    scalingAdapter: z
      .looseObject({})
      .optional()
      .describe('Set (even empty) to let a DynamoGraphDeploymentScalingAdapter own replicas.'),
  })
  .describe('One component of the graph.');

export const DynamoGraphDeploymentV1beta1SpecSchema = z
  .looseObject({
    components: cel(
      listMap(z.array(DynamoComponentSchema).max(25), 'name'),
      {
        rule: "self.filter(c, has(c.type) && c.type == 'epp').size() <= 1",
        message: 'at most one component may have type epp',
      },
      {
        rule: 'self.all(c1, !has(c1.name) || self.filter(c2, has(c2.name) && c2.name.lowerAscii() == c1.name.lowerAscii()).size() == 1)',
        message: 'component names must be unique case-insensitively',
      },
    )
      .optional()
      .describe('Components of the graph, keyed by name.'),
    env: listMap(z.array(EnvVar), 'name').optional().describe("Prepended to every component's environment."),
    backendFramework: z.enum(['sglang', 'vllm', 'trtllm']).optional().describe('sglang, vllm or trtllm.'),
  })
  .describe('The components of a Dynamo inference graph.');

const ComponentReplicaStatus = z.looseObject({
  componentKind: z.string().optional(),
  componentNames: z.array(z.string()).optional(),
  replicas: z.number().int().min(0).optional(),
  updatedReplicas: z.number().int().min(0).optional(),
  readyReplicas: z.number().int().min(0).optional(),
  availableReplicas: z.number().int().min(0).optional(),
  runtimeNamespace: z.string().optional(),
});

export const DynamoGraphDeploymentV1beta1StatusSchema = z
  .looseObject({
    state: z.string().max(64).optional().describe('initializing, pending, successful or failed.'),
    observedGeneration: z.number().int().min(0).optional(),
    conditions: listMap(z.array(Condition), 'type').optional(),
    components: z
      .record(z.string(), ComponentReplicaStatus)
      .optional()
      .describe('Replica status per component.'),
  })
  .describe('Written by the Dynamo operator.');

const DGD_COLUMNS: PrinterColumn[] = [
  {
    name: 'Ready',
    type: 'string',
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: 'Ready status of the graph deployment',
  },
  {
    name: 'Backend',
    type: 'string',
    jsonPath: '.spec.backendFramework',
    description: 'Backend framework (sglang, vllm, trtllm)',
  },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

export const DYNAMO_GRAPH_DEPLOYMENT: CrdDefinition = {
  group: 'nvidia.com',
  version: 'v1beta1',
  kind: 'DynamoGraphDeployment',
  plural: 'dynamographdeployments',
  singular: 'dynamographdeployment',
  shortNames: ['dgd'],
  categories: [],
  description:
    "Stand-in for NVIDIA Dynamo's DynamoGraphDeployment, faithful for the fields servetune reads and writes. For tests and demos only.",
  spec: DynamoGraphDeploymentV1beta1SpecSchema,
  status: DynamoGraphDeploymentV1beta1StatusSchema,
  printerColumns: DGD_COLUMNS,
  otherVersions: [
    {
      version: 'v1alpha1',
      spec: DynamoGraphDeploymentSpecSchema,
      status: DynamoGraphDeploymentStatusSchema,
      printerColumns: DGD_COLUMNS,
      deprecated: true,
      deprecationWarning: 'nvidia.com/v1alpha1 DynamoGraphDeployment is deprecated; use nvidia.com/v1beta1',
    },
  ],
};

// ---------------------------------------------------------------------------------------------------------
// DynamoGraphDeploymentScalingAdapter

const DgdsaStatus = z
  .looseObject({
    replicas: z.number().int().min(0).optional().describe('Replicas of the target component.'),
    selector: z.string().optional().describe('Label selector of the pods (for the HPA).'),
    lastScaleTime: z.string().optional(),
  })
  .describe('Synced from the DGD by the adapter controller.');

export const DgdsaSpecSchema = z
  .looseObject({
    replicas: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .describe('Desired replicas of the target component (set by HPA, KEDA, the Planner or a person).'),
    dgdRef: cel(
      z.looseObject({
        name: z.string().min(1).describe('Name of the DynamoGraphDeployment.'),
        componentName: z.string().min(1).optional().describe('Name of the component in spec.components.'),
        componentGroupName: z.string().min(1).optional().describe('Experimental component group.'),
      }),
      {
        rule: 'has(self.componentName) != has(self.componentGroupName)',
        message: 'exactly one of componentName or componentGroupName must be set',
      },
    ),
  })
  .describe('The component a scaling adapter scales.');

export const DgdsaV1alpha1SpecSchema = z
  .looseObject({
    replicas: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .describe('Desired replicas of the target service.'),
    dgdRef: z.looseObject({
      name: z.string().min(1).describe('Name of the DynamoGraphDeployment.'),
      serviceName: z.string().min(1).describe('Key of the service in spec.services.'),
    }),
  })
  .describe('The service a scaling adapter scales.');

export const DYNAMO_GRAPH_DEPLOYMENT_SCALING_ADAPTER: CrdDefinition = {
  group: 'nvidia.com',
  version: 'v1beta1',
  kind: 'DynamoGraphDeploymentScalingAdapter',
  plural: 'dynamographdeploymentscalingadapters',
  singular: 'dynamographdeploymentscalingadapter',
  shortNames: ['dgdsa'],
  categories: [],
  description:
    "Stand-in for NVIDIA Dynamo's DynamoGraphDeploymentScalingAdapter: a scale subresource for one component of a DynamoGraphDeployment. For tests and demos only.",
  spec: DgdsaSpecSchema,
  status: DgdsaStatus,
  scale: {
    specReplicasPath: '.spec.replicas',
    statusReplicasPath: '.status.replicas',
    labelSelectorPath: '.status.selector',
  },
  printerColumns: [
    { name: 'DGD', type: 'string', jsonPath: '.spec.dgdRef.name', description: 'DynamoGraphDeployment name' },
    {
      name: 'COMPONENT',
      type: 'string',
      jsonPath: '.spec.dgdRef.componentName',
      description: 'Component name',
    },
    { name: 'REPLICAS', type: 'integer', jsonPath: '.status.replicas', description: 'Current replicas' },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  otherVersions: [
    {
      version: 'v1alpha1',
      spec: DgdsaV1alpha1SpecSchema,
      status: DgdsaStatus,
      printerColumns: [
        {
          name: 'DGD',
          type: 'string',
          jsonPath: '.spec.dgdRef.name',
          description: 'DynamoGraphDeployment name',
        },
        {
          name: 'SERVICE',
          type: 'string',
          jsonPath: '.spec.dgdRef.serviceName',
          description: 'Service name',
        },
        { name: 'REPLICAS', type: 'integer', jsonPath: '.status.replicas', description: 'Current replicas' },
        { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
      deprecated: true,
    },
  ],
};

// ---------------------------------------------------------------------------------------------------------
// One reading of both shapes

/** A component of a graph, whichever version it was written in. */
export interface GraphComponent {
  name: string;
  /** v1beta1 `type`, or v1alpha1 `componentType` refined by `subComponentType` (prefill/decode). */
  type: string;
  /** Replicas as written (undefined: Dynamo's default of 1). */
  replicas: number | undefined;
  /** The main container's command and args, split on whitespace (shell strings are common in args). */
  tokens: string[];
  /** The same, unsplit (JSON arguments such as the Planner's `--config` keep their spaces). */
  rawArgs: string[];
  env: { name: string; value?: string }[];
  /** GPUs per pod from the limits (`nvidia.com/gpu` or v1alpha1's `gpu`), if any. */
  gpuLimit: string | undefined;
  nodeSelector: Record<string, string>;
  nodeCount: number;
  /** Whether a scaling adapter owns replicas. */
  scalingAdapter: boolean;
}

export type GraphShape = 'components' | 'services';

export type GraphReading =
  | { shape: GraphShape; components: GraphComponent[]; backendFramework?: string }
  | { error: string };

/**
 * A container's arguments as words. An element is either one word of an exec-form list, possibly a JSON value
 * with spaces (`["--speculative-config", "{\"method\": \"mtp\"}"]`), or a command line split on whitespace,
 * where a word that opens with a single or double quote runs to the matching quote (the quotes removed), so
 * `--speculative-config '{"method": "mtp"}'` is one value; other words are taken verbatim.
 */
function split(args: string[] | undefined): string[] {
  const out: string[] = [];
  for (const a of args ?? []) {
    const t = a.trim();
    if (t.startsWith('{') || t.startsWith('[')) {
      out.push(t);
      continue;
    }
    let i = 0;
    while (i < t.length) {
      while (i < t.length && /\s/.test(t[i])) i++;
      if (i >= t.length) break;
      const q = t[i];
      if (q === "'" || q === '"') {
        const close = t.indexOf(q, i + 1);
        if (close > 0) {
          out.push(t.slice(i + 1, close));
          i = close + 1;
          continue;
        }
      }
      const from = i;
      while (i < t.length && !/\s/.test(t[i])) i++;
      out.push(t.slice(from, i));
    }
  }
  return out;
}

/** Reads the components of a DGD spec in either shape (`spec.components` wins when both are present). */
export function graphComponents(spec: unknown): GraphReading {
  const s = (spec ?? {}) as { components?: unknown; services?: unknown };
  if (s.components !== undefined) {
    const parsed = DynamoGraphDeploymentV1beta1SpecSchema.safeParse(spec);
    if (!parsed.success) return { error: issue('spec', parsed.error) };
    const graphEnv = parsed.data.env ?? [];
    const components = (parsed.data.components ?? []).map((c): GraphComponent => {
      const main = c.podTemplate?.spec?.containers?.find((x) => x.name === 'main');
      const limits = main?.resources?.limits ?? {};
      const gpu = limits['nvidia.com/gpu'] ?? limits.gpu;
      const own = main?.env ?? [];
      return {
        name: c.name,
        type: c.type ?? '',
        replicas: c.replicas,
        tokens: [...split(main?.command), ...split(main?.args)],
        rawArgs: [...(main?.command ?? []), ...(main?.args ?? [])],
        env: [...graphEnv.filter((e) => !own.some((o) => o.name === e.name)), ...own],
        gpuLimit: gpu === undefined ? undefined : String(gpu),
        nodeSelector: c.podTemplate?.spec?.nodeSelector ?? {},
        nodeCount: c.multinode?.nodeCount ?? 1,
        scalingAdapter: c.scalingAdapter !== undefined,
      };
    });
    return { shape: 'components', components, backendFramework: parsed.data.backendFramework };
  }
  const parsed = DynamoGraphDeploymentSpecSchema.safeParse(spec ?? {});
  if (!parsed.success) return { error: issue('spec', parsed.error) };
  const components = Object.entries(parsed.data.services).map(([name, v]): GraphComponent => {
    const ct = (v.componentType ?? '').toLowerCase();
    const sub = (v.subComponentType ?? '').toLowerCase();
    const limits = v.resources?.limits ?? {};
    return {
      name,
      type: ct === 'worker' && (sub === 'prefill' || sub === 'decode') ? sub : ct,
      replicas: v.replicas,
      tokens: [
        ...split(v.extraPodSpec?.mainContainer?.command),
        ...split(v.extraPodSpec?.mainContainer?.args),
      ],
      rawArgs: [
        ...(v.extraPodSpec?.mainContainer?.command ?? []),
        ...(v.extraPodSpec?.mainContainer?.args ?? []),
      ],
      env: v.envs ?? [],
      gpuLimit: limits.gpu ?? limits['nvidia.com/gpu'] ?? v.resources?.requests?.gpu,
      nodeSelector: v.extraPodSpec?.nodeSelector ?? {},
      nodeCount: v.multinode?.nodeCount ?? 1,
      scalingAdapter: v.scalingAdapter?.enabled === true,
    };
  });
  return { shape: 'services', components, backendFramework: parsed.data.backendFramework };
}

function issue(prefix: string, e: z.ZodError): string {
  const i = e.issues[0];
  return `${[prefix, ...i.path].join('.')}: ${i.message}`;
}
