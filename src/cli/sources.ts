import type { FlagSpec, ParsedFlags } from './flags.ts';

/**
 * Where each configuration value came from (a flag or a config file), so that a refusal names what the user
 * typed: `--workers 8`, or `sim.yaml: field 'workers'`.
 */
export class ConfigSources {
  private readonly byPath = new Map<string, FlagSpec[]>();
  private readonly flags: ParsedFlags;
  private readonly file?: { path: string; doc: Record<string, unknown> };

  constructor(flags: ParsedFlags, specs: FlagSpec[], file?: { path: string; doc: Record<string, unknown> }) {
    this.flags = flags;
    this.file = file;
    for (const s of specs) {
      const path = s.path ?? s.sets;
      if (path === undefined || !flags.values.has(s.name)) continue;
      this.byPath.set(path, [...(this.byPath.get(path) ?? []), s]);
    }
  }

  /** The flag that set `path` or a field under it, as typed (`--workers 8`, `--disagg`). */
  flag(path: string): string | undefined {
    for (const [p, specs] of this.byPath) {
      if (p !== path && !p.startsWith(`${path}.`)) continue;
      const s = specs[0];
      const v = this.flags.values.get(s.name);
      return s.kind === 'boolean' || s.kind === 'negate' ? `--${s.name}` : `--${s.name} ${String(v)}`;
    }
    return undefined;
  }

  /** The config file's field at `path` (or under it), as `FILE: field 'a.b'`. */
  fileField(path: string): string | undefined {
    if (!this.file) return undefined;
    let node: unknown = this.file.doc;
    for (const part of path.split('.')) {
      if (typeof node !== 'object' || node === null || !(part in node)) return undefined;
      node = (node as Record<string, unknown>)[part];
    }
    return node === undefined ? undefined : `${this.file.path}: field '${path}'`;
  }

  /** Whether the user set `path` (or a field under it), by a flag or in the file. */
  given(path: string): boolean {
    return this.describe(path) !== undefined;
  }

  /** How the user set `path`: the flag if one did (flags win over the file), else the file's field. */
  describe(path: string): string | undefined {
    return this.flag(path) ?? this.fileField(path);
  }
}
