import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';

/** How one command-line flag maps onto a configuration path. */
export interface FlagSpec {
  name: string;
  aliases?: string[];
  /** Dotted path in the configuration object; null for flags the command handles itself. */
  path: string | null;
  kind: 'string' | 'number' | 'int' | 'boolean' | 'negate';
  help: string;
  /** For kind 'string': map accepted spellings onto the canonical value. */
  values?: Record<string, string>;
  metavar?: string;
}

export interface ParsedFlags {
  /** Values keyed by flag name (without dashes), after type conversion. */
  values: Map<string, string | number | boolean>;
  positionals: string[];
}

/** Parses argv strictly: unknown flags, missing values and malformed numbers are usage errors. */
export function parseFlags(argv: string[], specs: FlagSpec[]): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  const canonical = new Map<string, FlagSpec>();
  for (const s of specs) {
    for (const n of [s.name, ...(s.aliases ?? [])]) {
      options[n] = { type: s.kind === 'boolean' || s.kind === 'negate' ? 'boolean' : 'string' };
      canonical.set(n, s);
    }
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg.replace(/^Unknown option/, 'unknown option'));
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
        if (s === '' || !Number.isFinite(v)) throw new UsageError(`${flag}: expected a number, got '${s}'`);
        if (spec.kind === 'int' && !Number.isInteger(v))
          throw new UsageError(`${flag}: expected an integer, got '${s}'`);
        values.set(spec.name, v);
        break;
      }
      case 'string': {
        const s = String(str);
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
    const names = [s.name, ...(s.aliases ?? [])].map((n) => `--${n}`).join(', ');
    const arg =
      s.kind === 'boolean' || s.kind === 'negate'
        ? ''
        : ` ${s.metavar ?? (s.kind === 'string' ? 'VALUE' : 'N')}`;
    return [`  ${names}${arg}`, s.help];
  });
  const w = Math.min(44, Math.max(...rows.map((r) => r[0].length)) + 2);
  return `${usage}\n\nOptions:\n${rows.map(([a, b]) => (a.length >= w ? `${a}\n${' '.repeat(w)}${b}` : a.padEnd(w) + b)).join('\n')}\n`;
}
