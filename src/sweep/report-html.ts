import type { CandidateMetrics } from './objective.ts';
import { OBJECTIVES, sloKey } from './objective.ts';
import { esc, labelledTicks, linearTicks, logTicks, px, tickLabel } from './svg.ts';
import { type CandidateResult, describeTiming, type SweepResult } from './sweep.ts';

/**
 * Renders a sweep as one self-contained HTML page (inline CSS and SVG, no scripts or network): the
 * recommendation and why, two Pareto plots (throughput per GPU against the latency axis, and against
 * per-user speed) and the table of candidates.
 */
export function renderSweepHtml(
  result: SweepResult,
  context: { title?: string; workload?: string } = {},
): string {
  const title = context.title ?? 'servetune sweep';
  const axis = result.latencyAxis;
  const axisLabel = `${axis.metric.toUpperCase()} ${axis.percentile} (ms)`;
  const full = result.candidates.filter((c) => c.rank !== null && c.metrics !== null);
  const slo = result.slos.find((s) => s.metric === axis.metric && s.percentile === axis.percentile);
  const latencyPlot = scatter({
    id: 'pareto-latency',
    title: `Output throughput per GPU vs ${axisLabel.replace(' (ms)', '')}`,
    xLabel: axisLabel,
    yLabel: 'output throughput per GPU (tok/s)',
    points: full.map((c) => ({ c, x: m(c)[axis.metric][axis.percentile], y: m(c).throughput_per_gpu })),
    frontier: result.frontier.latency,
    recommended: result.recommended?.id ?? null,
    xUnit: 'ms',
    yUnit: 'tok/s/GPU',
    xLog: true,
    xBound: slo?.maxMs,
  });
  const userPlot = scatter({
    id: 'pareto-user',
    title: 'Output throughput per GPU vs per-user speed',
    xLabel: 'per-user output speed (tok/s per user)',
    yLabel: 'output throughput per GPU (tok/s)',
    points: full.map((c) => ({ c, x: m(c).user_tok_s, y: m(c).throughput_per_gpu })),
    frontier: result.frontier.userSpeed,
    recommended: result.recommended?.id ?? null,
    xUnit: 'tok/s per user',
    yUnit: 'tok/s/GPU',
    xLog: false,
  });
  const obj = OBJECTIVES[result.objective];
  const slos = result.slos.map((s) => `${sloKey(s)} &le; ${num(s.maxMs)} ms`).join(', ') || 'none';
  const budget = result.budget.map((b) => `${esc(b.type)}: ${b.count}`).join(', ');
  const rows = result.candidates
    .slice()
    .sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9) || b.fraction - a.fraction || a.id - b.id)
    .map((c) => candidateRow(c, result.recommended?.id === c.id))
    .join('\n');
  const pruned =
    result.pruned.length === 0
      ? ''
      : `<h2>Left out before running (${result.pruned.length})</h2><ul class="pruned">${result.pruned
          .slice(0, 50)
          .map((p) => `<li>${esc(p.label)}: ${esc(p.reason)}</li>`)
          .join('')}</ul>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1d2733;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6776;margin-bottom:16px} .meta b{color:#1d2733}
.rec{border:1px solid #1b998b;background:#effaf8;border-radius:8px;padding:12px 16px}
.rec.none{border-color:#c0392b;background:#fdf1ef}
.rec p{margin:4px 0}
.plots{display:flex;flex-wrap:wrap;gap:16px} figure{margin:0} figcaption{color:#5b6776;font-size:12px}
svg text{font-family:inherit} .axis line,.axis path{stroke:#8a96a3} .grid line{stroke:#e4e8ec}
table{border-collapse:collapse;width:100%;font-size:12.5px} th,td{padding:4px 7px;border-bottom:1px solid #e4e8ec;text-align:right;white-space:nowrap}
th{background:#f4f6f8;position:sticky;top:0} td.l,th.l{text-align:left} tr.rec td{background:#effaf8;font-weight:600}
tr.partial td{color:#9aa4ae} .ok{color:#1b998b} .bad{color:#c0392b} .pruned{color:#5b6776}
</style></head><body>
<h1>${esc(title)}</h1>
<div class="meta">${context.workload ? `Workload <b>${esc(context.workload)}</b> &middot; ` : ''}Objective <b>${esc(obj.label)}</b> (${obj.better} is better) &middot; SLOs <b>${slos}</b> &middot; GPU budget <b>${budget}</b> &middot; optimiser <b>${esc(result.optimizer)}</b> &middot; ${result.stats.enumerated} candidates, ${result.stats.evaluations} simulations (${result.stats.fullEvaluations} on the whole workload) in ${num(result.stats.wall_s)} s on ${result.stats.threads} thread(s)${result.stats.partial ? ' &middot; <b class="bad">stopped early: partial results</b>' : ''}</div>
<div class="meta" id="timing">${esc(describeTiming(result.timing))}</div>
<div class="rec${result.recommended ? '' : ' none'}" id="recommendation">${result.explanation.map((l) => `<p>${esc(l)}</p>`).join('')}</div>
<h2>Pareto frontiers</h2>
<div class="plots">${latencyPlot}${userPlot}</div>
<h2>Candidates</h2>
<table id="candidates"><thead><tr><th>rank</th><th class="l">candidate</th><th>GPUs</th><th>tok/s/GPU</th><th>TTFT p50</th><th>TTFT p90</th><th>TTFT p99</th><th>ITL p90</th><th>TPOT mean</th><th>E2E p90</th><th>tok/s/user</th><th>reuse</th><th>SLOs</th><th>workload</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${pruned}
<p class="meta">Latencies in ms. Generated by servetune.</p>
</body></html>
`;
}

function m(c: CandidateResult): CandidateMetrics {
  return c.metrics as CandidateMetrics;
}

function candidateRow(c: CandidateResult, recommended: boolean): string {
  const x = c.metrics;
  const cls = recommended ? ' class="rec"' : c.rank === null ? ' class="partial"' : '';
  if (x === null) {
    return `<tr${cls}><td>&ndash;</td><td class="l">${esc(c.label)}</td><td>${c.gpus}</td><td colspan="10" class="l">${c.error ? `failed: ${esc(c.error.split('\n')[0])}` : 'not evaluated'}</td><td>0%</td></tr>`;
  }
  const verdict =
    c.rank === null
      ? '&ndash;'
      : c.feasible
        ? '<span class="ok">met</span>'
        : `<span class="bad">+${num(c.violation * 100)}%</span>`;
  return `<tr${cls}><td>${c.rank ?? '&ndash;'}</td><td class="l">${esc(c.label)}</td><td>${c.gpus}</td><td>${num(x.throughput_per_gpu)}</td><td>${num(x.ttft.p50)}</td><td>${num(x.ttft.p90)}</td><td>${num(x.ttft.p99)}</td><td>${num(x.itl.p90)}</td><td>${num(x.tpot.mean)}</td><td>${num(x.e2e.p90)}</td><td>${num(x.user_tok_s)}</td><td>${num(x.prefix_reuse * 100)}%</td><td>${verdict}</td><td>${num(c.fraction * 100)}%</td></tr>`;
}

interface PlotPoint {
  c: CandidateResult;
  x: number;
  y: number;
}

const W = 560;
const H = 400;
const PAD = { left: 72, right: 20, top: 36, bottom: 72 };

function scatter(p: {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  /** Units of the x and y values, for tooltips. */
  xUnit: string;
  yUnit: string;
  points: PlotPoint[];
  frontier: number[];
  recommended: number | null;
  xLog: boolean;
  xBound?: number;
}): string {
  const pts = p.points.filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y) && (!p.xLog || q.x > 0));
  if (pts.length === 0)
    return `<figure><svg id="${p.id}" width="${W}" height="${H}" role="img"><text x="20" y="40">No data</text></svg></figure>`;
  const xs = pts.map((q) => q.x);
  const ys = pts.map((q) => q.y);
  if (p.xBound !== undefined && p.xBound > 0) xs.push(p.xBound);
  let xMin = Math.min(...xs);
  let xMax = Math.max(...xs);
  const xLog = p.xLog && xMax / xMin > 8;
  if (xLog) {
    xMin /= 1.3;
    xMax *= 1.3;
  } else {
    const pad = (xMax - xMin || Math.abs(xMax) || 1) * 0.08;
    xMin = Math.max(0, xMin - pad);
    xMax += pad;
  }
  const yMax = Math.max(...ys) * 1.1 || 1;
  const yMin = 0;
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const sx = (v: number) =>
    PAD.left + (xLog ? (Math.log(v / xMin) / Math.log(xMax / xMin)) * iw : ((v - xMin) / (xMax - xMin)) * iw);
  const sy = (v: number) => PAD.top + ih - ((v - yMin) / (yMax - yMin)) * ih;
  const xt = xLog ? logTicks(xMin, xMax) : linearTicks(xMin, xMax);
  const yt = linearTicks(yMin, yMax);
  const xLabelled = labelledTicks(xt, sx, tickLabel, 6.2);
  const grid = [
    ...xt.map((t) => `<line x1="${px(sx(t))}" x2="${px(sx(t))}" y1="${PAD.top}" y2="${PAD.top + ih}"/>`),
    ...yt.map((t) => `<line x1="${PAD.left}" x2="${PAD.left + iw}" y1="${px(sy(t))}" y2="${px(sy(t))}"/>`),
  ].join('');
  const axes = `<path d="M${PAD.left},${PAD.top} V${PAD.top + ih} H${PAD.left + iw}" fill="none"/>${xt
    .map(
      (t, i) =>
        `<line x1="${px(sx(t))}" x2="${px(sx(t))}" y1="${PAD.top + ih}" y2="${PAD.top + ih + 5}"/>${
          xLabelled[i]
            ? `<text class="x-tick" x="${px(sx(t))}" y="${PAD.top + ih + 19}" text-anchor="middle" font-size="11" fill="#5b6776">${tickLabel(t)}</text>`
            : ''
        }`,
    )
    .join('')}${yt
    .map(
      (t) =>
        `<line x1="${PAD.left - 5}" x2="${PAD.left}" y1="${px(sy(t))}" y2="${px(sy(t))}"/><text x="${PAD.left - 8}" y="${px(sy(t) + 4)}" text-anchor="end" font-size="11" fill="#5b6776">${tickLabel(t)}</text>`,
    )
    .join('')}`;
  const byId = new Map(pts.map((q) => [q.c.id, q]));
  // The frontier joins candidates that meet the SLOs only: a line through a miss would offer it as a choice.
  const front = p.frontier.map((id) => byId.get(id)).filter((q): q is PlotPoint => q?.c.feasible === true);
  const frontLine =
    front.length > 1
      ? `<polyline class="frontier" points="${front.map((q) => `${px(sx(q.x))},${px(sy(q.y))}`).join(' ')}" fill="none" stroke="#1b998b" stroke-width="2" stroke-dasharray="0"/>`
      : '';
  const bound =
    p.xBound !== undefined && p.xBound >= xMin && p.xBound <= xMax
      ? `<line class="slo-bound" x1="${px(sx(p.xBound))}" x2="${px(sx(p.xBound))}" y1="${PAD.top}" y2="${PAD.top + ih}" stroke="#c0392b" stroke-dasharray="5 4"/><text x="${px(sx(p.xBound) + 4)}" y="${PAD.top + 12}" font-size="11" fill="#c0392b">SLO ${tickLabel(p.xBound)} ms</text>`
      : '';
  const values = (q: PlotPoint) =>
    `${esc(q.c.label)}: ${tickLabel(q.x)} ${esc(p.xUnit)}, ${tickLabel(q.y)} ${esc(p.yUnit)}`;
  const dots = pts
    .filter((q) => q.c.id !== p.recommended)
    .map((q) => {
      const cls = q.c.feasible ? 'point feasible' : 'point infeasible';
      const style = q.c.feasible
        ? 'fill="#1b998b" fill-opacity="0.75" stroke="#0f6b61"'
        : 'fill="none" stroke="#9aa4ae" stroke-width="1.5"';
      return `<circle class="${cls}" data-id="${q.c.id}" cx="${px(sx(q.x))}" cy="${px(sy(q.y))}" r="5" ${style}><title>${values(q)}${q.c.feasible ? '' : ' (misses SLOs)'}</title></circle>`;
    })
    .join('');
  const rq = p.recommended !== null ? byId.get(p.recommended) : undefined;
  const rec = rq
    ? `<g class="recommended"><circle class="recommended-halo" cx="${px(sx(rq.x))}" cy="${px(sy(rq.y))}" r="13" fill="#f39c12" fill-opacity="0.25" stroke="#e67e22" stroke-width="2"/><circle id="${p.id}-recommended" class="point recommended" data-id="${rq.c.id}" cx="${px(sx(rq.x))}" cy="${px(sy(rq.y))}" r="7" fill="#e67e22" stroke="#a04000" stroke-width="1.5"><title>recommended: ${values(rq)}</title></circle><text x="${px(sx(rq.x) + 16)}" y="${px(sy(rq.y) - 10)}" font-size="12" font-weight="600" fill="#a04000">recommended</text></g>`
    : '';
  // Legend entries for what the plot shows, and nothing else.
  const ly = H - 8;
  const entries: [string, string][] = [];
  if (pts.some((q) => q.c.feasible))
    entries.push(['<circle cx="4" cy="-4" r="5" fill="#1b998b" fill-opacity="0.75"/>', 'meets SLOs']);
  if (pts.some((q) => !q.c.feasible))
    entries.push([
      '<circle cx="4" cy="-4" r="5" fill="none" stroke="#9aa4ae" stroke-width="1.5"/>',
      'misses SLOs',
    ]);
  if (frontLine)
    entries.push([
      '<line x1="-6" x2="16" y1="-4" y2="-4" stroke="#1b998b" stroke-width="2"/>',
      'Pareto frontier',
    ]);
  if (rq) entries.push(['<circle cx="4" cy="-4" r="6" fill="#e67e22"/>', 'recommended']);
  let lx = PAD.left;
  const legend = `<g class="legend" font-size="11" fill="#5b6776">${entries
    .map(([mark, label]) => {
      const g = `<g class="legend-entry" transform="translate(${lx} ${ly})">${mark}<text x="${label === 'Pareto frontier' ? 22 : 14}" y="0">${label}</text></g>`;
      lx += (label === 'Pareto frontier' ? 22 : 14) + label.length * 6.2 + 18;
      return g;
    })
    .join('')}</g>`;
  return `<figure><svg id="${p.id}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(p.title)}" xmlns="http://www.w3.org/2000/svg">
<text x="${W / 2}" y="20" text-anchor="middle" font-size="13" font-weight="600" fill="#1d2733">${esc(p.title)}</text>
<g class="grid">${grid}</g><g class="axis">${axes}</g>${bound}${frontLine}${dots}${rec}
<text class="x-label" x="${PAD.left + iw / 2}" y="${PAD.top + ih + 40}" text-anchor="middle" font-size="12" fill="#1d2733">${esc(p.xLabel)}${xLog ? ' &mdash; log scale' : ''}</text>
<text class="y-label" transform="translate(16 ${PAD.top + ih / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#1d2733">${esc(p.yLabel)}</text>
${legend}</svg></figure>`;
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '&ndash;';
  const a = Math.abs(v);
  return a >= 1000
    ? Math.round(v).toLocaleString('en-US')
    : a >= 100
      ? v.toFixed(0)
      : a >= 10
        ? v.toFixed(1)
        : v.toFixed(2);
}
