import type { RowParser, TraceFormat, TraceRecord } from '../format.ts';
import { RowError } from '../issues.ts';

/**
 * Azure LLM inference traces (Azure/AzurePublicDataset, 2023 and 2024 releases): CSV with the header
 * `TIMESTAMP,ContextTokens,GeneratedTokens` (any column order, names compared without case) and rows such as
 * `2023-11-16 18:17:03.9799600,4808,10`. Timestamps are wall-clock times in UTC with up to 7 fractional
 * digits; arrivals are relative to the first row's. The rows carry no prompt content, so no two requests
 * share a prefix (the reader notes the rows without hash ids).
 */

const COLUMNS = { timestamp: 'TIMESTAMP', context: 'ContextTokens', generated: 'GeneratedTokens' } as const;
const TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|[+-]00:?00)?$/;
const INTEGER = /^\d{1,12}$/;

/** Epoch ms of an Azure timestamp (fractions kept below the ms), or NaN when it is not one. */
export function parseAzureTimestamp(text: string): number {
  const m = TIME.exec(text);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, s, frac] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60)
    return Number.NaN;
  const whole = Date.UTC(Number(y), month - 1, day, Number(h), Number(mi), Number(s));
  return whole + (frac ? Number(`0.${frac}`) * 1000 : 0);
}

const unquote = (s: string) => {
  const t = s.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).trim() : t;
};

class AzureRowParser implements RowParser {
  private index: Record<keyof typeof COLUMNS, number> | null = null;
  private width = 0;
  private originMs = Number.NaN;

  parse(line: string): TraceRecord | null {
    const cells = line.split(',').map(unquote);
    if (this.index === null) {
      const lower = cells.map((c) => c.toLowerCase());
      const at = (name: string) => lower.indexOf(name.toLowerCase());
      const index = {
        timestamp: at('TIMESTAMP'),
        context: at('ContextTokens'),
        generated: at('GeneratedTokens'),
      };
      const missing = (Object.keys(COLUMNS) as (keyof typeof COLUMNS)[]).filter((k) => index[k] < 0);
      if (missing.length > 0)
        throw new RowError(
          null,
          `the header must name the columns ${Object.values(COLUMNS).join(',')}; missing ${missing.map((k) => COLUMNS[k]).join(', ')}`,
        );
      this.index = index;
      this.width = cells.length;
      return null;
    }
    if (cells.length !== this.width)
      throw new RowError(null, `has ${cells.length} columns; the header has ${this.width}`);
    const ts = cells[this.index.timestamp];
    const t = parseAzureTimestamp(ts);
    if (Number.isNaN(t))
      throw new RowError(
        COLUMNS.timestamp,
        `'${ts.slice(0, 40)}' is not a time such as 2023-11-16 18:17:03.9799600 (UTC)`,
      );
    if (Number.isNaN(this.originMs)) this.originMs = t;
    if (t < this.originMs)
      throw new RowError(
        COLUMNS.timestamp,
        `'${ts}' is before the first row's time (arrivals count from it)`,
      );
    const tokens = (key: 'context' | 'generated') => {
      const raw = cells[(this.index as Record<string, number>)[key]];
      if (!INTEGER.test(raw))
        throw new RowError(COLUMNS[key], `must be a non-negative integer, got '${raw.slice(0, 40)}'`);
      return Number(raw);
    };
    const context = tokens('context');
    const generated = tokens('generated');
    if (context < 1) throw new RowError(COLUMNS.context, 'must be at least 1');
    return {
      timestampMs: t - this.originMs,
      inputLength: context,
      outputLength: generated,
      fields: {
        timestampMs: COLUMNS.timestamp,
        inputLength: COLUMNS.context,
        outputLength: COLUMNS.generated,
      },
    };
  }
}

export const azureFormat: TraceFormat = {
  name: 'azure',
  description: 'Azure LLM inference trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens); no prefix sharing',
  defaultBlockSize: 512,
  detect: (firstLine) => {
    const cells = firstLine.split(',').map((c) => unquote(c).toLowerCase());
    return Object.values(COLUMNS).every((name) => cells.includes(name.toLowerCase()));
  },
  createParser: () => new AzureRowParser(),
};
