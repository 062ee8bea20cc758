import { esc, linearTicks, logTicks } from '../../src/sweep/svg.ts';

/**
 * Self-contained SVG charts for docs/fidelity.md (no dependencies, no scripts, no external fonts):
 * the per-metric relative difference of servetune from the reference per case, and the wall time of both
 * per case on a log scale. Escaping and ticks come from src/sweep/svg.ts, as the sweep report's do.
 */

const FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"';

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(2).replace(/\.?0+$/, ''));

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${fmt(x)}" y="${fmt(y)}" ${attrs}>${esc(s)}</text>`;
}

export interface DiffSeries {
  /** Metric label (legend). */
  label: string;
  color: string;
  /** Marker shape. */
  shape: 'circle' | 'square' | 'diamond' | 'triangle' | 'cross' | 'bar';
}

export interface DiffRow {
  label: string;
  /** Relative difference per series (fraction, e.g. 0.012 = +1.2 %); null = not measured. */
  values: (number | null)[];
  /** Smallest and largest reference-run value per series, relative to the reference median (random cases). */
  spread?: ([number, number] | null)[];
}

function marker(shape: DiffSeries['shape'], x: number, y: number, color: string): string {
  const r = 4;
  switch (shape) {
    case 'circle':
      return `<circle cx="${fmt(x)}" cy="${fmt(y)}" r="${r}" fill="${color}"/>`;
    case 'square':
      return `<rect x="${fmt(x - r)}" y="${fmt(y - r)}" width="${2 * r}" height="${2 * r}" fill="${color}"/>`;
    case 'diamond':
      return `<path d="M${fmt(x)} ${fmt(y - r - 1)}L${fmt(x + r + 1)} ${fmt(y)}L${fmt(x)} ${fmt(y + r + 1)}L${fmt(x - r - 1)} ${fmt(y)}Z" fill="${color}"/>`;
    case 'triangle':
      return `<path d="M${fmt(x)} ${fmt(y - r - 1)}L${fmt(x + r + 1)} ${fmt(y + r)}L${fmt(x - r - 1)} ${fmt(y + r)}Z" fill="${color}"/>`;
    case 'cross':
      return `<path d="M${fmt(x - r)} ${fmt(y - r)}L${fmt(x + r)} ${fmt(y + r)}M${fmt(x - r)} ${fmt(y + r)}L${fmt(x + r)} ${fmt(y - r)}" stroke="${color}" stroke-width="2.2"/>`;
    case 'bar':
      return `<rect x="${fmt(x - 1.5)}" y="${fmt(y - r - 1)}" width="3" height="${2 * r + 2}" fill="${color}"/>`;
  }
}

/**
 * A dot plot: one row per case, one marker per metric at its relative difference, the ±band shaded.
 * Values beyond the axis are drawn at its edge with an arrow and their figure.
 */
export function diffChart(opts: {
  title: string;
  series: DiffSeries[];
  rows: DiffRow[];
  /** Tolerance band, fraction (0.03). */
  band: number;
  /** Axis half-range, fraction; values beyond are clipped. */
  limit: number;
}): string {
  const { series, rows, band, limit } = opts;
  const labelW = 250;
  const plotW = 560;
  const rowH = 20;
  const top = 58;
  const legendH = 26;
  const plotH = rows.length * rowH;
  const width = labelW + plotW + 30;
  const height = top + plotH + 48 + legendH;
  const x = (v: number) => labelW + ((Math.max(-limit, Math.min(limit, v)) + limit) / (2 * limit)) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${esc(opts.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(width / 2, 20, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'),
  );
  // Legend.
  let lx = labelW;
  for (const s of series) {
    out.push(marker(s.shape, lx + 5, 40, s.color), text(lx + 14, 44, s.label));
    lx += 16 + s.label.length * 6.4 + 18;
  }
  // Band and grid.
  out.push(
    `<rect x="${fmt(x(-band))}" y="${top}" width="${fmt(x(band) - x(-band))}" height="${plotH}" fill="#e6f4ea"/>`,
  );
  for (const v of linearTicks(-limit, limit, 10)) {
    const gx = x(v);
    out.push(
      `<line x1="${fmt(gx)}" y1="${top}" x2="${fmt(gx)}" y2="${top + plotH}" stroke="${Math.abs(v) < 1e-9 ? '#555' : '#ddd'}"/>`,
      text(
        gx,
        top + plotH + 16,
        `${v > 1e-9 ? '+' : ''}${fmt(Math.round(v * 1000) / 10)}%`,
        'text-anchor="middle"',
      ),
    );
  }
  out.push(
    text(
      labelW + plotW / 2,
      top + plotH + 36,
      `(servetune − reference) / reference, % (shaded: ±${fmt(band * 100)}%)`,
      'text-anchor="middle"',
    ),
  );
  rows.forEach((row, i) => {
    const cy = top + i * rowH + rowH / 2;
    if (i % 2 === 1)
      out.push(
        `<rect x="0" y="${top + i * rowH}" width="${width}" height="${rowH}" fill="#000" fill-opacity="0.03"/>`,
      );
    out.push(text(labelW - 8, cy + 4, row.label, 'text-anchor="end"'));
    row.values.forEach((v, k) => {
      const s = series[k];
      const sp = row.spread?.[k];
      if (sp) {
        const dy = (k - (series.length - 1) / 2) * 2;
        out.push(
          `<line x1="${fmt(x(sp[0]))}" y1="${fmt(cy + dy)}" x2="${fmt(x(sp[1]))}" y2="${fmt(cy + dy)}" stroke="${s.color}" stroke-opacity="0.45" stroke-width="1.5"/>`,
        );
      }
      if (v === null || !Number.isFinite(v)) return;
      out.push(marker(s.shape, x(v), cy, s.color));
      if (Math.abs(v) > limit) {
        const right = v > 0;
        const ax = x(v) + (right ? 7 : -7);
        out.push(
          `<path d="M${fmt(ax)} ${fmt(cy - 4)}L${fmt(ax + (right ? 6 : -6))} ${fmt(cy)}L${fmt(ax)} ${fmt(cy + 4)}Z" fill="${s.color}"/>`,
        );
      }
    });
    // Beyond the axis: the most extreme value on each side gets its figure.
    for (const side of [1, -1]) {
      let k = -1;
      row.values.forEach((v, i) => {
        if (
          v !== null &&
          Number.isFinite(v) &&
          v * side > limit &&
          (k < 0 || v * side > (row.values[k] as number) * side)
        )
          k = i;
      });
      if (k < 0) continue;
      const v = row.values[k] as number;
      out.push(
        text(
          side > 0 ? x(limit) - 4 : x(-limit) + 4,
          cy - 6,
          `${v > 0 ? '+' : '−'}${fmt(Math.round(Math.abs(v) * 1000) / 10)}%`,
          `font-size="9" fill="${series[k].color}" text-anchor="${side > 0 ? 'end' : 'start'}"`,
        ),
      );
    }
  });
  out.push(`<rect x="${labelW}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface WallRow {
  label: string;
  /** Seconds: servetune's simulation and whole process, the reference's simulation and whole process. */
  servetune: { sim: number; process: number };
  reference: { sim: number; process: number };
}

/** Horizontal bars on a log axis: per case, servetune and reference, whole process (light) and simulation (dark). */
export function wallChart(opts: { title: string; rows: WallRow[] }): string {
  const { rows } = opts;
  const labelW = 250;
  const plotW = 560;
  const barH = 7;
  const rowH = 2 * barH + 8;
  const top = 58;
  const plotH = rows.length * rowH;
  const width = labelW + plotW + 30;
  const height = top + plotH + 48;
  const all = rows.flatMap((r) => [
    r.servetune.sim,
    r.servetune.process,
    r.reference.sim,
    r.reference.process,
  ]);
  const positive = all.filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...positive, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive, 1)));
  const x = (v: number) =>
    labelW + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  const colors = { servetune: ['#1a5fb4', '#99c1f1'], reference: ['#c64600', '#ffbe6f'] };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${esc(opts.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(width / 2, 20, opts.title, 'text-anchor="middle" font-size="14" font-weight="600"'),
  );
  const legend: [string, string][] = [
    [colors.servetune[0], 'servetune simulation'],
    [colors.servetune[1], 'servetune process'],
    [colors.reference[0], 'reference simulation'],
    [colors.reference[1], 'reference process'],
  ];
  let lx = 120;
  for (const [c, l] of legend) {
    out.push(`<rect x="${fmt(lx)}" y="34" width="12" height="10" fill="${c}"/>`, text(lx + 16, 44, l));
    lx += 16 + l.length * 6.4 + 16;
  }
  // Decades labelled; 2 and 5 as light lines.
  for (const d of logTicks(lo, hi, [1, 2, 5])) {
    const gx = x(d);
    const decade = Math.abs(Math.log10(d) - Math.round(Math.log10(d))) < 1e-9;
    out.push(
      `<line x1="${fmt(gx)}" y1="${top}" x2="${fmt(gx)}" y2="${top + plotH}" stroke="${decade ? '#ccc' : '#eee'}"/>`,
    );
    if (decade)
      out.push(
        text(gx, top + plotH + 16, d >= 1 ? `${fmt(d)} s` : `${fmt(d * 1000)} ms`, 'text-anchor="middle"'),
      );
  }
  out.push(
    text(
      labelW + plotW / 2,
      top + plotH + 36,
      'wall time, seconds (log scale; median of runs)',
      'text-anchor="middle"',
    ),
  );
  rows.forEach((row, i) => {
    const y0 = top + i * rowH + 4;
    if (i % 2 === 1)
      out.push(
        `<rect x="0" y="${top + i * rowH}" width="${width}" height="${rowH}" fill="#000" fill-opacity="0.03"/>`,
      );
    out.push(text(labelW - 8, y0 + barH + 4, row.label, 'text-anchor="end"'));
    (['servetune', 'reference'] as const).forEach((side, k) => {
      const y = y0 + k * barH;
      const v = row[side];
      out.push(
        `<rect x="${labelW}" y="${y}" width="${fmt(Math.max(0, x(v.process) - labelW))}" height="${barH - 1}" fill="${colors[side][1]}"/>`,
        `<rect x="${labelW}" y="${y + 1}" width="${fmt(Math.max(0, x(v.sim) - labelW))}" height="${barH - 3}" fill="${colors[side][0]}"/>`,
      );
    });
  });
  out.push(`<rect x="${labelW}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
