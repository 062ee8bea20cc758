import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { UsageError } from './errors.ts';
import { fieldAt } from './schema-fields.ts';

type Kind = 'string' | 'number' | 'int' | 'boolean' | 'negate';

/** How one command-line flag maps onto a configuration path. */
export interface FlagSpec {
  name: string;
  aliases?: string[];
  /** A one-letter form (`-n`), as kubectl's own flags have. */
  short?: string;
  /** Dotted path in the configuration object; null for flags the command handles itself. */
  path: string | null;
  kind: Kind;
  help: string;
  /** For kind 'string': map accepted spellings onto the canonical value. */
  values?: Record<string, string>;
  metavar?: string;
  /** For a flag without a path: the configuration path it fills (named in conflict messages). */
  sets?: string;
}

/** A flag as written in a command's table: type, values, help and default come from the schema unless given. */
export type FlagDecl = Omit<FlagSpec, 'kind' | 'help'> & { kind?: Kind; help?: string };

/**
 * Completes a command's flag table from the configuration schema: a flag with a path takes its type, its
 * enum values and (when it has none of its own) its help from the schema field, and its help ends with the
 * schema's default. Throws at load time when a path names no field or a flag contradicts its field, so the
 * table cannot drift from the schema.
 */
export function flagsFromSchema(decls: FlagDecl[], schema: z.ZodType): FlagSpec[] {
  return decls.map((d) => {
    if (d.path === null) {
      if (!d.kind || !d.help) throw new Error(`flag --${d.name}: a flag without a path needs kind and help`);
      return d as FlagSpec;
    }
    const f = fieldAt(schema, d.path);
    if (!f) throw new Error(`flag --${d.name}: no field '${d.path}' in the configuration schema`);
    const derived: Kind | undefined =
      f.type === 'integer'
        ? 'int'
        : f.type === 'number'
          ? 'number'
          : f.type === 'boolean'
            ? 'boolean'
            : f.type === 'string' || f.type === 'enum'
              ? 'string'
              : undefined;
    const kind = d.kind ?? derived;
    const compatible =
      derived === undefined ||
      kind === derived ||
      (kind === 'negate' && derived === 'boolean') ||
      (kind === 'number' && derived === 'int');
    if (!kind || !compatible) throw new Error(`flag --${d.name}: kind ${kind} does not fit field ${d.path}`);
    let values = d.values;
    if (f.type === 'enum') {
      const allowed = f.values ?? [];
      values ??= Object.fromEntries(allowed.map((v) => [v, v]));
      const stray = Object.values(values).find((v) => !allowed.includes(v));
      if (stray) throw new Error(`flag --${d.name}: '${stray}' is not a value of ${d.path}`);
    }
    const help = d.help ?? f.description?.replace(/\.$/, '');
    if (!help) throw new Error(`flag --${d.name}: no help and no description of ${d.path}`);
    const dflt =
      kind !== 'negate' && kind !== 'boolean' && f.default !== undefined && typeof f.default !== 'object'
        ? ` (default ${String(f.default)})`
        : '';
    return { ...d, kind, help: `${help}${dflt}`, ...(values ? { values } : {}) };
  });
}

export interface ParsedFlags {
  /** Values keyed by flag name (without dashes), after type conversion. */
  values: Map<string, string | number | boolean>;
  positionals: string[];
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Parses argv strictly: unknown flags, missing or empty values and malformed numbers are usage errors. */
export function parseFlags(argv: string[], specs: FlagSpec[]): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  const canonical = new Map<string, FlagSpec>();
  for (const s of specs) {
    for (const n of [s.name, ...(s.aliases ?? [])]) {
      options[n] = { type: s.kind === 'boolean' || s.kind === 'negate' ? 'boolean' : 'string' };
      canonical.set(n, s);
    }
    if (s.short) options[s.name].short = s.short;
  }
  const config = { args: argv, options, strict: true, allowPositionals: true, tokens: true } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    // `--seed -1`: a value that looks like a flag must be attached.
    const ambiguous = /^Option '(--?[\w-]+)' argument is ambiguous/.exec(msg);
    if (ambiguous) {
      const i = argv.indexOf(ambiguous[1]);
      const v = i >= 0 ? argv[i + 1] : 'VALUE';
      throw new UsageError(`${ambiguous[1]}: a value starting with '-' goes after '=': ${ambiguous[1]}=${v}`);
    }
    throw new UsageError(msg.replace(/^Unknown option/, 'unknown option'));
  }
  // A flag given twice (or under two of its names) is a conflict, not a silent "last one wins".
  const seen = new Map<string, string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    const spec = canonical.get(t.name) as FlagSpec;
    const given = `${t.rawName}${t.value !== undefined ? ` ${t.value}` : ''}`;
    const first = seen.get(spec.name);
    if (first !== undefined)
      throw new UsageError(`${first} conflicts with ${given}: give --${spec.name} once`);
    seen.set(spec.name, given);
  }
  const values = new Map<string, string | number | boolean>();
  for (const [key, raw] of Object.entries(parsed.values)) {
    const spec = canonical.get(key);
    if (!spec || raw === undefined) continue;
    const flag = `--${key}`;
    const str = Array.isArray(raw) ? String(raw[raw.length - 1]) : raw;
    switch (spec.kind) {
      case 'boolean':
      case 'negate':
        values.set(spec.name, str as boolean);
        break;
      case 'number':
      case 'int': {
        const s = String(str).trim();
        const v = Number(s);
        // Decimal only: Number() would also take '0x10', '0b11' and '' (as 0).
        if (!DECIMAL.test(s) || !Number.isFinite(v))
          throw new UsageError(`${flag}: expected a number, got '${s}'`);
        if (spec.kind === 'int' && !Number.isInteger(v))
          throw new UsageError(`${flag}: expected an integer, got '${s}'`);
        values.set(spec.name, v);
        break;
      }
      case 'string': {
        const s = String(str);
        if (s.trim() === '') throw new UsageError(`${flag}: empty value`);
        if (spec.values) {
          const v = spec.values[s];
          if (v === undefined) {
            const allowed = [...new Set(Object.values(spec.values))].join(', ');
            throw new UsageError(`${flag}: unknown value '${s}' (expected one of ${allowed})`);
          }
          values.set(spec.name, v);
        } else values.set(spec.name, s);
        break;
      }
    }
  }
  return { values, positionals: parsed.positionals };
}

/** Sets `value` at a dotted path, creating objects on the way. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = o[parts[i]];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) o[parts[i]] = {};
    o = o[parts[i]] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

/** Applies parsed flags onto a configuration object (flags win over the file). */
export function applyFlags(target: Record<string, unknown>, flags: ParsedFlags, specs: FlagSpec[]): void {
  for (const s of specs) {
    if (s.path === null || !flags.values.has(s.name)) continue;
    const v = flags.values.get(s.name);
    setPath(target, s.path, s.kind === 'negate' ? !v : v);
  }
}

/** Config path -> `--flag` for error messages. */
export function flagNames(specs: FlagSpec[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of specs) if (s.path) m.set(s.path, `--${s.name}`);
  return m;
}

export function renderHelp(usage: string, specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const names = [
      ...(s.short ? [`-${s.short}`] : []),
      ...[s.name, ...(s.aliases ?? [])].map((n) => `--${n}`),
    ].join(', ');
    const choices = s.values ? [...new Set(Object.values(s.values))].join('|') : '';
    const arg =
      s.kind === 'boolean' || s.kind === 'negate'
        ? ''
        : ` ${s.metavar ?? (choices && choices.length <= 40 ? choices : s.kind === 'string' ? 'VALUE' : 'N')}`;
    return [`  ${names}${arg}`, s.help];
  });
  const w = Math.min(44, Math.max(...rows.map((r) => r[0].length)) + 2);
  return `${usage}\n\nOptions:\n${rows.map(([a, b]) => (a.length >= w ? `${a}\n${' '.repeat(w)}${b}` : a.padEnd(w) + b)).join('\n')}\n`;
}
