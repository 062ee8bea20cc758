import { esc, labelledTicks, linearTicks, logTicks, tickLabel } from '../src/sweep/svg.ts';

/**
 * Hand-written SVG line charts for the docs: stacked panels sharing one x axis, linear or log axes, labelled
 * with units, one polyline with markers per series. Ticks and labels come from src/sweep/svg.ts, as the
 * sweep report's do; deterministic output.
 */
export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  dashed?: boolean;
}

export interface Panel {
  yLabel: string;
  yLog?: boolean;
  series: Series[];
  /** Optional horizontal reference line (e.g. an SLO). */
  reference?: { y: number; label: string };
}

export interface Chart {
  title: string;
  xLabel: string;
  xLog?: boolean;
  xTicks?: number[];
  panels: Panel[];
  width?: number;
  panelHeight?: number;
}

export function renderChart(c: Chart): string {
  const width = c.width ?? 720;
  const ph = c.panelHeight ?? 200;
  const left = 78;
  const right = 150;
  const top = 44;
  const gap = 36;
  const bottom = 56;
  const plotW = width - left - right;
  const height = top + c.panels.length * ph + (c.panels.length - 1) * gap + bottom;
  const xs = c.panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)));
  let xLo = Math.min(...xs);
  let xHi = Math.max(...xs);
  if (c.xLog) {
    xLo = Math.max(xLo, 1e-9);
  } else if (xLo === xHi) xHi = xLo + 1;
  const xT = (x: number) =>
    c.xLog
      ? left + ((Math.log10(x) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo) || 1)) * plotW
      : left + ((x - xLo) / (xHi - xLo)) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<title>${esc(c.title)}</title>`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
  );
  const xTicks = c.xTicks ?? (c.xLog ? logTicks(xLo, xHi) : linearTicks(xLo, xHi, 5));
  const xLabelled = labelledTicks(xTicks, xT);
  c.panels.forEach((p, i) => {
    const y0 = top + i * (ph + gap);
    const ys = p.series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => Number.isFinite(y));
    if (p.reference) ys.push(p.reference.y);
    let yLo = Math.min(...ys);
    let yHi = Math.max(...ys);
    if (p.yLog) {
      yLo = 10 ** Math.floor(Math.log10(Math.max(yLo, 1e-9)));
      yHi = 10 ** Math.ceil(Math.log10(Math.max(yHi, yLo * 10)));
    } else {
      yLo = Math.min(0, yLo);
      const t = linearTicks(yLo, yHi * 1.05, 5);
      yHi = t[t.length - 1] >= yHi ? t[t.length - 1] : yHi * 1.1;
    }
    const yT = (y: number) =>
      p.yLog
        ? y0 +
          ph -
          ((Math.log10(Math.max(y, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph
        : y0 + ph - ((y - yLo) / (yHi - yLo || 1)) * ph;
    out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${ph}" fill="#fafafa" stroke="#999"/>`);
    const yTicks = p.yLog ? logTicks(yLo, yHi, [1, 2, 5]) : linearTicks(yLo, yHi, 5);
    for (const t of yTicks) {
      const y = yT(t).toFixed(1);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
      out.push(
        `<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${tickLabel(t)}</text>`,
      );
    }
    xTicks.forEach((t, k) => {
      if (t < xLo || t > xHi) return;
      const x = xT(t).toFixed(1);
      out.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + ph}" stroke="#eeeeee"/>`);
      if (i === c.panels.length - 1 && xLabelled[k])
        out.push(`<text x="${x}" y="${y0 + ph + 16}" text-anchor="middle">${tickLabel(t)}</text>`);
    });
    const cy = y0 + ph / 2;
    out.push(
      `<text x="18" y="${cy}" text-anchor="middle" transform="rotate(-90 18 ${cy})">${esc(p.yLabel)}</text>`,
    );
    if (p.reference) {
      const y = yT(p.reference.y).toFixed(1);
      out.push(
        `<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#c0392b" stroke-dasharray="6 4"/>`,
      );
      out.push(
        `<text x="${left + plotW - 4}" y="${Number(y) - 5}" text-anchor="end" fill="#c0392b">${esc(p.reference.label)}</text>`,
      );
    }
    p.series.forEach((s, k) => {
      const pts = s.points.filter(([x, y]) => Number.isFinite(y) && (!c.xLog || x > 0));
      const d = pts.map(([x, y]) => `${xT(x).toFixed(1)},${yT(y).toFixed(1)}`).join(' ');
      out.push(
        `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
      for (const [x, y] of pts) {
        out.push(`<circle cx="${xT(x).toFixed(1)}" cy="${yT(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
      }
      const ly = y0 + 14 + k * 18;
      out.push(
        `<line x1="${left + plotW + 12}" x2="${left + plotW + 30}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      );
      out.push(`<text x="${left + plotW + 35}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
    });
  });
  const lastBottom = top + c.panels.length * ph + (c.panels.length - 1) * gap;
  out.push(
    `<text x="${left + plotW / 2}" y="${lastBottom + 40}" text-anchor="middle">${esc(c.xLabel)}</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
