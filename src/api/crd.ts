import { z } from 'zod';

/**
 * Turns zod schemas into CustomResourceDefinitions. The zod schemas (with `.describe()` for `kubectl explain`
 * and `.meta()` for Kubernetes extensions such as CEL rules) are the one source of truth: the operator
 * validates with them at runtime and `npm run generate:crds` writes `crds/*.yaml` from them.
 */

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export interface CrdDefinition {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  listKind?: string;
  shortNames: string[];
  categories: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
  /** Rules on the whole object (e.g. spec immutability needs `oldSelf` at the spec level). */
  validations?: CelRule[];
  /**
   * Further served (not stored) versions, for stand-ins of other projects' kinds that serve several. Without
   * a conversion webhook the API server only rewrites `apiVersion` between them, so their spec shapes must
   * tolerate each other (the stand-ins keep unknown spec fields).
   */
  otherVersions?: CrdVersion[];
  /** The scale subresource (`kubectl scale`, HPA), on every version. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
  /** Whether the stored version is deprecated (served with a warning). */
  deprecated?: boolean;
}

export interface CrdVersion {
  version: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
  validations?: CelRule[];
  deprecated?: boolean;
  deprecationWarning?: string;
}

/** Marks a schema as Kubernetes' int-or-string (resource quantities, ports); zod validates the union. */
export function intOrString<T extends z.ZodType>(schema: T): T {
  return schema.meta({ 'x-kubernetes-int-or-string': true }) as T;
}

export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: string;
}

/** Attaches CEL rules (`x-kubernetes-validations`) to a schema. */
export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule[]): T {
  return schema.meta({ 'x-kubernetes-validations': rules }) as T;
}

/** A list merged by key under server-side apply (`listType=map`), as conditions must be. */
export function listMap<T extends z.ZodType>(schema: T, ...keys: string[]): T {
  return schema.meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': keys }) as T;
}

type Json = { [key: string]: unknown };
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Rewrites zod's JSON schema into a Kubernetes structural schema; throws on constructs a CRD cannot hold. */
export function structural(node: Json, path = '$'): Json {
  // int-or-string is the one union a structural schema may hold; it carries no type of its own.
  if (node['x-kubernetes-int-or-string'] === true) {
    return {
      ...(node.description !== undefined && { description: node.description }),
      'x-kubernetes-int-or-string': true,
    };
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || k === 'id') continue;
    if ((k === 'maximum' && v === MAX_SAFE) || (k === 'minimum' && v === -MAX_SAFE)) continue;
    // The apiserver checks `format: date-time` itself; zod's long regex would only cost CEL budget.
    if (k === 'pattern' && node.format === 'date-time') continue;
    if (k === 'additionalProperties') {
      if (v === false) continue;
      if (typeof v === 'object' && v !== null && Object.keys(v).length === 0) {
        out['x-kubernetes-preserve-unknown-fields'] = true;
        continue;
      }
      out[k] = structural(v as Json, `${path}.*`);
      continue;
    }
    if (k === 'propertyNames') continue;
    if (k === 'anyOf' || k === 'oneOf' || k === 'allOf' || k === 'not' || k === '$ref' || k === 'const') {
      throw new Error(`${path}: '${k}' is not allowed in a structural CRD schema`);
    }
    if (k === 'properties') {
      const props: Json = {};
      for (const [name, sub] of Object.entries(v as Json))
        props[name] = structural(sub as Json, `${path}.${name}`);
      out[k] = props;
      continue;
    }
    if (k === 'items') {
      out[k] = structural(v as Json, `${path}[]`);
      continue;
    }
    out[k] = v;
  }
  // Integral enums (e.g. percentiles) come out as `number`.
  if (out.type === 'number' && Array.isArray(out.enum) && out.enum.every((e) => Number.isInteger(e))) {
    out.type = 'integer';
  }
  if (out.type === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    throw new Error(`${path}: every field of a structural schema needs a type`);
  }
  if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  // Stable, readable key order: type and description first.
  const { type, description, ...rest } = out;
  return { ...(type !== undefined && { type }), ...(description !== undefined && { description }), ...rest };
}

export function openApiSchema(schema: z.ZodType): Json {
  return structural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }) as Json);
}

/** The CustomResourceDefinition object for one kind. */
function rootSchema(
  description: string,
  spec: z.ZodType,
  status: z.ZodType,
  validations: CelRule[] | undefined,
): Json {
  const root: Json = {
    type: 'object',
    description,
    properties: {
      apiVersion: {
        type: 'string',
        description:
          'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.',
      },
      kind: {
        type: 'string',
        description:
          'Kind is a string value representing the REST resource this object represents. In CamelCase.',
      },
      metadata: { type: 'object' },
      spec: openApiSchema(spec),
      status: openApiSchema(status),
    },
    required: ['spec'],
  };
  if (validations?.length) root['x-kubernetes-validations'] = validations;
  return root;
}

/** The CustomResourceDefinition object for one kind. */
export function toCrd(def: CrdDefinition): Json {
  const subresources: Json = { status: {}, ...(def.scale && { scale: def.scale }) };
  const versions: Json[] = [
    {
      name: def.version,
      served: true,
      storage: true,
      ...(def.deprecated && { deprecated: true }),
      subresources,
      additionalPrinterColumns: def.printerColumns,
      schema: { openAPIV3Schema: rootSchema(def.description, def.spec, def.status, def.validations) },
    },
  ];
  for (const v of def.otherVersions ?? []) {
    versions.push({
      name: v.version,
      served: true,
      storage: false,
      ...(v.deprecated && { deprecated: true }),
      ...(v.deprecationWarning && { deprecationWarning: v.deprecationWarning }),
      // Copies: a YAML writer would otherwise print shared objects as anchors and aliases.
      subresources: structuredClone(subresources),
      additionalPrinterColumns: structuredClone(v.printerColumns),
      schema: { openAPIV3Schema: rootSchema(def.description, v.spec, v.status, v.validations) },
    });
  }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${def.group}` },
    spec: {
      group: def.group,
      names: {
        kind: def.kind,
        listKind: def.listKind ?? `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: def.categories,
      },
      scope: 'Namespaced',
      versions,
    },
  };
}
