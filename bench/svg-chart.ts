/**
 * Hand-written SVG line charts for the docs: stacked panels sharing one x axis, linear or log axes, labelled
 * with units, one polyline with markers per series. No dependencies; deterministic output.
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

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 10_000) return `${Math.round(v / 1000)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(0);
  if (a >= 1) return Number(v.toFixed(1)).toString();
  return Number(v.toPrecision(2)).toString();
}

/** Round ticks for a linear range. */
function linearTicks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** 1-2-5 ticks for a log range. */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out.length >= 2 ? out : [lo, hi];
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
  const xTicks = c.xTicks ?? (c.xLog ? logTicks(xLo, xHi) : linearTicks(xLo, xHi));
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
      const t = linearTicks(yLo, yHi * 1.05);
      yHi = t[t.length - 1] >= yHi ? t[t.length - 1] : yHi * 1.1;
    }
    const yT = (y: number) =>
      p.yLog
        ? y0 +
          ph -
          ((Math.log10(Math.max(y, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph
        : y0 + ph - ((y - yLo) / (yHi - yLo || 1)) * ph;
    out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${ph}" fill="#fafafa" stroke="#999"/>`);
    const yTicks = p.yLog ? logTicks(yLo, yHi) : linearTicks(yLo, yHi);
    for (const t of yTicks) {
      const y = yT(t).toFixed(1);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
      out.push(
        `<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
      );
    }
    for (const t of xTicks) {
      if (t < xLo || t > xHi) continue;
      const x = xT(t).toFixed(1);
      out.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + ph}" stroke="#eeeeee"/>`);
      if (i === c.panels.length - 1)
        out.push(`<text x="${x}" y="${y0 + ph + 16}" text-anchor="middle">${fmt(t)}</text>`);
    }
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
