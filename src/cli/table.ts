/**
 * Renders rows as an aligned plain-text table. Numeric columns are right-aligned, as are columns listed in
 * `right` (pre-formatted numbers).
 */
export function renderTable(header: string[], rows: (string | number)[][], right: number[] = []): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => right.includes(i) || rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]) =>
    r
      .map((c, i) => (numeric[i] ? (c ?? '').padStart(widths[i]) : (c ?? '').padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join(
    '\n',
  );
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? '-' : String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(3);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const digits = a >= 100 ? 1 : a >= 1 ? 2 : 4;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
