import type { DeploymentTuning, TuningRecommendation } from '../api/index.ts';
import { plannerSummary } from '../operator/sweep/mapping.ts';
import { esc, linearTicks, px, tickLabel } from '../sweep/svg.ts';

/**
 * One self-contained HTML page (no network) for a TuningRecommendation: the change, the predictions with
 * their intervals, the frontier as an SVG plot (GPUs against p90 TTFT, the baseline and the proposal marked),
 * the transition cost, the explanation, and the rollout so far with the verification windows.
 */

const W = 640;
const H = 360;
const M = { l: 64, r: 20, t: 20, b: 48 };

function frontierSvg(r: TuningRecommendation): string {
  const pts = r.spec.frontier.map((f) => ({ x: f.gpus, y: f.ttftP90Ms, label: f.summary, kind: 'frontier' }));
  const base = {
    x: r.spec.baseline.gpus,
    y: r.spec.predicted.baseline.ttftMs.p90,
    label: 'baseline',
    kind: 'baseline',
  };
  const prop = {
    x: r.spec.proposal.gpus,
    y: r.spec.predicted.proposal.ttftMs.p90,
    label: 'proposal',
    kind: 'proposal',
  };
  const all = [...pts, base, prop];
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const xt = linearTicks(Math.min(0, ...xs), Math.max(...xs) * 1.1 || 1);
  const yt = linearTicks(0, Math.max(...ys) * 1.1 || 1);
  const sx = (v: number) => M.l + ((v - xt[0]) / (xt[xt.length - 1] - xt[0] || 1)) * (W - M.l - M.r);
  const sy = (v: number) => H - M.b - ((v - yt[0]) / (yt[yt.length - 1] - yt[0] || 1)) * (H - M.t - M.b);
  const grid = [
    ...xt.map(
      (v) =>
        `<line x1="${px(sx(v))}" y1="${M.t}" x2="${px(sx(v))}" y2="${H - M.b}" class="g"/><text x="${px(sx(v))}" y="${H - M.b + 16}" text-anchor="middle">${esc(tickLabel(v))}</text>`,
    ),
    ...yt.map(
      (v) =>
        `<line x1="${M.l}" y1="${px(sy(v))}" x2="${W - M.r}" y2="${px(sy(v))}" class="g"/><text x="${M.l - 6}" y="${px(sy(v) + 4)}" text-anchor="end">${esc(tickLabel(v))}</text>`,
    ),
  ].join('');
  const sorted = [...pts].sort((a, b) => a.x - b.x);
  const line =
    sorted.length > 1
      ? `<polyline class="f" points="${sorted.map((p) => `${px(sx(p.x))},${px(sy(p.y))}`).join(' ')}"/>`
      : '';
  const dot = (p: { x: number; y: number; label: string; kind: string }) =>
    `<circle class="${p.kind}" cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="${p.kind === 'frontier' ? 4 : 7}"><title>${esc(`${p.label}: ${p.x} GPUs, ${p.y.toFixed(1)} ms`)}</title></circle>`;
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Pareto frontier">
${grid}${line}${pts.map(dot).join('')}${dot(base)}${dot(prop)}
<text x="${(W + M.l) / 2}" y="${H - 10}" text-anchor="middle">GPUs</text>
<text transform="translate(16 ${(H - M.b + M.t) / 2}) rotate(-90)" text-anchor="middle">p90 TTFT (ms)</text>
</svg>`;
}

const row = (cells: (string | number)[]) =>
  `<tr>${cells.map((c) => `<td>${esc(String(c))}</td>`).join('')}</tr>`;
const iv = (i?: { low: number; high: number }) => (i ? `${i.low.toFixed(1)} - ${i.high.toFixed(1)}` : '');

export function renderRecommendationHtml(
  r: TuningRecommendation,
  tuning: DeploymentTuning | undefined,
  change: string[],
): string {
  const s = r.spec;
  const p = s.predicted;
  const I = p.intervals;
  const transitions = r.status?.rollout?.transitions ?? [];
  const windows = r.status?.rollout?.windows ?? [];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.metadata.name)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
svg text{font-size:11px;fill:#444}.g{stroke:#eee}.f{fill:none;stroke:#888;stroke-dasharray:4 3}
circle.frontier{fill:#7aa6d8}circle.baseline{fill:#d55}circle.proposal{fill:#3a3}pre{background:#f6f6f6;padding:.6em}
</style></head><body>
<h1>${esc(r.metadata.name)}</h1>
<p>${esc(`${s.targetRef.kind} ${s.targetRef.name}, tuned by ${s.deploymentTuning} (${s.objective})${tuning ? `, mode ${tuning.spec.updatePolicy.mode}` : ''}.`)}
State: <b>${esc(r.status?.state ?? 'Pending')}</b>${r.status?.message ? ` - ${esc(r.status.message)}` : ''}</p>
${s.review ? `<p>Review: ${esc(`${s.review.decision} by ${s.review.by}${s.review.reason ? ` (${s.review.reason})` : ''}`)}</p>` : ''}
<h2>Change</h2><pre>${esc(change.join('\n'))}</pre>
<h2>Predicted</h2>
<table><tr><th></th><th>baseline</th><th>interval</th><th>proposal</th><th>interval</th></tr>
${row(['GPUs', s.baseline.gpus, '', s.proposal.gpus, ''])}
${s.baseline.planner.enabled || s.proposal.planner.enabled ? row(['Planner', plannerSummary(s.baseline.planner), '', plannerSummary(s.proposal.planner), '']) : ''}
${row(['TTFT p90 (ms)', p.baseline.ttftMs.p90, iv(I?.baseline.ttftP90Ms), p.proposal.ttftMs.p90, iv(I?.proposal.ttftP90Ms)])}
${row(['ITL p90 (ms)', p.baseline.itlMs.p90, iv(I?.baseline.itlP90Ms), p.proposal.itlMs.p90, iv(I?.proposal.itlP90Ms)])}
${row(['objective', p.baseline.objectiveValue, iv(I?.baseline.objectiveValue), p.proposal.objectiveValue, iv(I?.proposal.objectiveValue)])}
${row(['meets SLOs', String(p.baseline.meetsSlos), '', String(p.proposal.meetsSlos), ''])}
</table>
<p>Gain ${p.gainPercent}%${p.gainPercentLow !== undefined ? `, at least ${p.gainPercentLow}% across the uncertainty` : ''}.</p>
${s.transition ? `<p>Transition: ${esc(`${s.transition.workersStarting} worker(s) start cold (${s.transition.coldStartSeconds} s), ${s.transition.extraGpuHours} GPU-hours held twice, ${s.transition.stages} stage(s), payback ${s.transition.paybackHours} h.`)}${simulatedHtml(s.transition)}</p>` : ''}
<h2>Frontier</h2>${frontierSvg(r)}
<h2>Why</h2><p>${esc(s.explanation)}</p>
${transitions.length ? `<h2>Rollout</h2><table><tr><th>time</th><th>state</th><th>reason</th><th>by</th><th>message</th></tr>${transitions.map((t) => row([t.time, t.state, t.reason, t.actor ?? '', t.message ?? ''])).join('')}</table>` : ''}
${windows.length ? `<h2>Verification</h2><table><tr><th>window end</th><th>outcome</th><th>TTFT p90</th><th>ITL p90</th><th>requests</th><th></th></tr>${windows.map((w) => row([w.end, w.outcome, w.ttftMs?.p90 ?? '', w.itlMs?.p90 ?? '', w.requests ?? '', w.message ?? ''])).join('')}</table>` : ''}
<p><small>Trace ${esc(s.trace.source)} (${s.trace.requests} requests, ${esc(s.trace.hash)}); ${esc(s.sweep.simulatorVersion)}, ${s.sweep.candidates} candidates.</small></p>
</body></html>
`;
}

/** The simulated transition in one sentence, or why there is none. */
function simulatedHtml(t: NonNullable<TuningRecommendation['spec']['transition']>): string {
  if (t.notSimulated) return ` ${esc(`Not simulated: ${t.notSimulated}.`)}`;
  const s = t.simulated;
  if (!s) return '';
  return ` ${esc(
    `Simulated: settled ${s.durationSeconds} s after the change; ${s.requests} requests during it had p90 TTFT ${s.ttftP90Ms.transition} ms (steady ${s.ttftP90Ms.steady} ms), ITL ${s.itlP90Ms.transition} ms (steady ${s.itlP90Ms.steady} ms); ${s.queuedLonger} queued longer; prefix hit rate of new workers ${(s.prefixHitRate.transition * 100).toFixed(0)}% (steady ${(s.prefixHitRate.steady * 100).toFixed(0)}%)${s.sloMissSeconds ? `; ${s.sloMissSeconds} s over twice the SLOs` : ''}.`,
  )}`;
}
