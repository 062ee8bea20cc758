import { z } from 'zod';
import type { CrdDefinition } from './crd.ts';
import type { KubeMeta } from './deployment-tuning.ts';

/**
 * The slice of NVIDIA Dynamo's DynamoGraphDeployment (nvidia.com/v1alpha1) the operator reads and will write.
 * Objects are Dynamo's, so every level keeps unknown fields. The CRD generated from this is a minimal stand-in
 * for tests and the demo (`config/dev/`); real clusters install Dynamo's own CRD.
 */

const QuantityMap = z.record(z.string(), z.string()).describe('Resource quantities (e.g. gpu: "2").');

export const DynamoServiceSchema = z
  .looseObject({
    componentType: z.string().max(64).optional().describe('frontend, worker, planner, ...'),
    subComponentType: z.string().max(64).optional().describe('prefill or decode for disaggregated workers.'),
    replicas: z.number().int().min(0).optional().describe('Pods of this service.'),
    resources: z
      .looseObject({
        requests: QuantityMap.optional(),
        limits: QuantityMap.optional(),
      })
      .optional()
      .describe('Per-pod resources; limits.gpu is GPUs per pod.'),
    envs: z
      .array(z.looseObject({ name: z.string(), value: z.string().optional() }))
      .optional()
      .describe('Environment of the main container.'),
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
  })
  .describe('One service (component) of the graph.');
export type DynamoService = z.infer<typeof DynamoServiceSchema>;

export const DynamoGraphDeploymentSpecSchema = z
  .looseObject({
    services: z.record(z.string(), DynamoServiceSchema).default({}).describe('Services by name.'),
  })
  .describe('The services of a Dynamo inference graph.');

export const DynamoGraphDeploymentStatusSchema = z
  .looseObject({})
  .describe('Written by the Dynamo operator.');

export const DYNAMO_GRAPH_DEPLOYMENT: CrdDefinition = {
  group: 'nvidia.com',
  version: 'v1alpha1',
  kind: 'DynamoGraphDeployment',
  plural: 'dynamographdeployments',
  singular: 'dynamographdeployment',
  shortNames: ['dgd'],
  categories: [],
  description:
    "Minimal stand-in for NVIDIA Dynamo's DynamoGraphDeployment, covering the fields servetune reads and writes. For tests and demos only.",
  spec: DynamoGraphDeploymentSpecSchema,
  status: DynamoGraphDeploymentStatusSchema,
  printerColumns: [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
};

export interface DynamoGraphDeployment {
  apiVersion: string;
  kind: 'DynamoGraphDeployment';
  metadata: KubeMeta;
  spec: z.infer<typeof DynamoGraphDeploymentSpecSchema>;
}
