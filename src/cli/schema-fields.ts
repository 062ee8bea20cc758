import { z } from 'zod';

/**
 * Reads zod object schemas as documentation: what a dotted path holds (its type, allowed values, default and
 * description), and what a level of the schema accepts. Flags, help and the "expected shape" of a config file
 * come from here, so they cannot drift from the schema that validates the same values.
 */
export interface FieldInfo {
  type: 'integer' | 'number' | 'boolean' | 'string' | 'enum' | 'object' | 'list' | 'other';
  /** Enum values. */
  values?: readonly string[];
  /** The schema's default, if the field has one. */
  default?: unknown;
  description?: string;
  /** The object schema, for type 'object'. */
  object?: z.ZodObject;
}

/** The innermost schema of a field and what its wrappers say (default, description). */
function unwrap(schema: z.ZodType): { inner: z.ZodType; default?: unknown; description?: string } {
  let s = schema;
  let description = s.description;
  let dflt: unknown;
  for (;;) {
    if (s instanceof z.ZodDefault) {
      if (dflt === undefined) dflt = s.def.defaultValue;
      s = s.unwrap() as z.ZodType;
    } else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
      s = s.unwrap() as z.ZodType;
    } else if (s instanceof z.ZodPipe) {
      // A preprocess step feeds the real schema; a transform is fed by it.
      s = (s.def.in instanceof z.ZodTransform ? s.def.out : s.def.in) as z.ZodType;
    } else break;
    description ??= s.description;
  }
  return { inner: s, default: dflt, description };
}

function describeNode(schema: z.ZodType): FieldInfo {
  const { inner, default: dflt, description } = unwrap(schema);
  const base = { ...(dflt !== undefined ? { default: dflt } : {}), ...(description ? { description } : {}) };
  if (inner instanceof z.ZodNumber) return { type: inner.isInt ? 'integer' : 'number', ...base };
  if (inner instanceof z.ZodBoolean) return { type: 'boolean', ...base };
  if (inner instanceof z.ZodString) return { type: 'string', ...base };
  if (inner instanceof z.ZodEnum) return { type: 'enum', values: inner.options.map(String), ...base };
  if (inner instanceof z.ZodObject) return { type: 'object', object: inner, ...base };
  if (inner instanceof z.ZodArray) return { type: 'list', ...base };
  return { type: 'other', ...base };
}

/** Object schemas a node may be (a union of a shorthand and an object offers its object). */
function objectsOf(schema: z.ZodType): z.ZodObject[] {
  const { inner } = unwrap(schema);
  if (inner instanceof z.ZodObject) return [inner];
  if (inner instanceof z.ZodUnion) return (inner.options as z.ZodType[]).flatMap(objectsOf);
  return [];
}

/** The field at a dotted path of an object schema, or undefined when the schema has no such field. */
export function fieldAt(schema: z.ZodType, path: string): FieldInfo | undefined {
  let nodes: z.ZodType[] = [schema];
  for (const part of path.split('.')) {
    nodes = nodes.flatMap(objectsOf).flatMap((o) => (part in o.shape ? [o.shape[part] as z.ZodType] : []));
    if (nodes.length === 0) return undefined;
  }
  return describeNode(nodes[0]);
}

/** Every leaf path under an object schema (for "did you mean" suggestions). */
export function leafPaths(schema: z.ZodType, prefix = ''): string[] {
  const out: string[] = [];
  for (const o of objectsOf(schema)) {
    for (const [k, v] of Object.entries(o.shape)) {
      const path = prefix ? `${prefix}.${k}` : k;
      const children = leafPaths(v as z.ZodType, path);
      out.push(path, ...children);
    }
  }
  return [...new Set(out)];
}

/** A field's type in words: `integer`, `vllm | sglang`, `integer or mapping`. */
function typeText(schema: z.ZodType): string {
  const { inner } = unwrap(schema);
  if (inner instanceof z.ZodUnion) return (inner.options as z.ZodType[]).map(typeText).join(' or ');
  const f = describeNode(schema);
  if (f.type === 'enum') return (f.values ?? []).join(' | ');
  if (f.type === 'object' || (f.type === 'other' && inner instanceof z.ZodRecord)) return 'mapping';
  return f.type === 'other' ? 'value' : f.type;
}

/** One line per key a level of the schema accepts: `  blockSize: integer (default 64) - Tokens per KV block`. */
export function shapeLines(schema: z.ZodType, path = '', indent = '  '): string[] {
  const target = path ? fieldAt(schema, path)?.object : objectsOf(schema)[0];
  if (!target) return [];
  return Object.entries(target.shape).map(([k, v]) => {
    const f = describeNode(v as z.ZodType);
    const type = typeText(v as z.ZodType);
    const dflt =
      f.default !== undefined && typeof f.default !== 'object' ? ` (default ${String(f.default)})` : '';
    return `${indent}${k}: ${type}${dflt}${f.description ? ` - ${f.description}` : ''}`;
  });
}
