import { existsSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { DeploymentTuning, OwnedFields, TuningRecommendation } from '../api/index.ts';
import { ApiError, isNotFound, KubeClient } from '../operator/kube/client.ts';
import {
  DEPLOYMENT_TUNINGS,
  type KubeList,
  pathOf,
  type ResourceType,
  TUNING_RECOMMENDATIONS,
} from '../operator/kube/resources.ts';
import { plannerSummary } from '../operator/sweep/mapping.ts';
import { readDynamoBaseline } from '../operator/target/dynamo.ts';
import { applyBody, planChange, readOwned, readTargetGraph } from '../operator/target/dynamo-apply.ts';
import { UsageError } from './errors.ts';
import { type FlagSpec, parseFlags, renderHelp } from './flags.ts';
import { renderRecommendationHtml } from './recommendation-report.ts';
import { renderTable } from './table.ts';

/**
 * `kubectl servetune` (bin/kubectl-servetune): recommendations for people. Reviews go through the API server
 * as the user, so the admission policy records who approved and refuses anyone signing as someone else.
 */

const USAGE = `Usage: kubectl servetune <command> [NAME] [options]

Commands:
  list                  recommendations in the namespace (-A: all namespaces)
  describe NAME         the change as a diff of the target's fields, predictions with intervals, the
                        transition cost, the frontier, why, and the rollout so far
  diff NAME             the exact server-side apply patch servetune sends to the target
  approve NAME          approve a Proposed recommendation as yourself [--reason TEXT]
  reject NAME           reject it as yourself --reason TEXT
  rollback NAME         roll an applied recommendation back [--reason TEXT]
  report NAME           write the recommendation's HTML report [-o FILE] (default NAME.html)`;

const FLAGS: FlagSpec[] = [
  {
    name: 'namespace',
    short: 'n',
    path: null,
    kind: 'string',
    metavar: 'NS',
    help: "namespace (default: the context's)",
  },
  { name: 'all-namespaces', short: 'A', path: null, kind: 'boolean', help: 'list: every namespace' },
  {
    name: 'kubeconfig',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'kubeconfig (default: $KUBECONFIG, ~/.kube/config)',
  },
  { name: 'context', path: null, kind: 'string', metavar: 'NAME', help: 'kubeconfig context' },
  { name: 'reason', path: null, kind: 'string', metavar: 'TEXT', help: 'why (required to reject)' },
  {
    name: 'output',
    short: 'o',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'report: the HTML file',
  },
  { name: 'help', short: 'h', path: null, kind: 'boolean', help: 'show this help' },
];

interface Ctx {
  client: KubeClient;
  namespace: string;
  out: NodeJS.WritableStream;
}

export async function kubectlCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const parsed = parseFlags(argv, FLAGS);
  const f = parsed.values;
  const [cmd, name, ...extra] = parsed.positionals;
  if (f.get('help') || cmd === undefined || cmd === 'help') {
    out.write(renderHelp(USAGE, FLAGS));
    return cmd === undefined && !f.get('help') ? 2 : 0;
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const kubeconfig = f.get('kubeconfig') as string | undefined;
  if (kubeconfig !== undefined && !existsSync(kubeconfig))
    throw new UsageError(`--kubeconfig: ${kubeconfig} not found`);
  let client: KubeClient;
  try {
    client = KubeClient.load(kubeconfig, { userAgent: 'kubectl-servetune' });
  } catch (e) {
    throw new UsageError(`no usable kubeconfig: ${(e as Error).message.split('\n')[0]}`);
  }
  if (f.get('context')) client.config.setCurrentContext(f.get('context') as string);
  const namespace =
    (f.get('namespace') as string | undefined) ??
    client.config.getContextObject(client.config.getCurrentContext())?.namespace ??
    'default';
  const ctx: Ctx = { client, namespace, out };
  const needName = () => {
    if (!name) throw new UsageError(`${cmd} needs a recommendation NAME`);
    return name;
  };
  try {
    switch (cmd) {
      case 'list':
        return await list(ctx, f.get('all-namespaces') === true);
      case 'describe':
        return await describe(ctx, needName());
      case 'diff':
        return await diff(ctx, needName());
      case 'approve':
      case 'reject': {
        const reason = f.get('reason') as string | undefined;
        if (cmd === 'reject' && !reason) throw new UsageError('reject needs --reason TEXT');
        return await reviewCmd(ctx, needName(), cmd === 'approve' ? 'Approved' : 'Rejected', reason);
      }
      case 'rollback':
        return await rollbackCmd(ctx, needName(), f.get('reason') as string | undefined);
      case 'report':
        return await report(ctx, needName(), (f.get('output') as string | undefined) ?? `${name}.html`);
      default:
        throw new UsageError(`unknown command '${cmd}' (see --help)`);
    }
  } catch (e) {
    if (e instanceof ApiError) throw new UsageError(apiMessage(e));
    throw e;
  } finally {
    await client.close();
  }
}

/** The API server's own message, which for an admission refusal says exactly what is wrong. */
function apiMessage(e: ApiError): string {
  const body = e.body as { message?: string } | undefined;
  return body?.message ?? e.message;
}

async function get(ctx: Ctx, name: string): Promise<TuningRecommendation> {
  try {
    return await ctx.client.get<TuningRecommendation>(pathOf(TUNING_RECOMMENDATIONS, ctx.namespace, name));
  } catch (e) {
    if (isNotFound(e)) throw new UsageError(`no TuningRecommendation ${name} in namespace ${ctx.namespace}`);
    throw e;
  }
}

const age = (iso?: string) => {
  if (!iso) return '-';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return s < 120
    ? `${Math.round(s)}s`
    : s < 7200
      ? `${Math.round(s / 60)}m`
      : s < 172800
        ? `${Math.round(s / 3600)}h`
        : `${Math.round(s / 86400)}d`;
};

async function list(ctx: Ctx, all: boolean): Promise<number> {
  const l = await ctx.client.get<KubeList<TuningRecommendation>>(
    pathOf(TUNING_RECOMMENDATIONS, all ? undefined : ctx.namespace),
  );
  const rows = l.items
    .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''))
    .map((r) => [
      ...(all ? [r.metadata.namespace ?? ''] : []),
      r.metadata.name,
      r.spec.targetRef.name,
      r.status?.state ?? 'Pending',
      `${r.spec.baseline.gpus} -> ${r.spec.proposal.gpus}`,
      r.spec.predicted.gainPercent.toFixed(1),
      r.spec.predicted.gainPercentLow === undefined ? '-' : r.spec.predicted.gainPercentLow.toFixed(1),
      r.spec.review?.by ?? '-',
      age(r.metadata.creationTimestamp),
    ]);
  const header = [
    ...(all ? ['NAMESPACE'] : []),
    'NAME',
    'TARGET',
    'STATE',
    'GPUS',
    'GAIN %',
    'GAIN LOW %',
    'REVIEWED BY',
    'AGE',
  ];
  ctx.out.write(
    rows.length
      ? `${renderTable(header, rows, [header.length - 5, header.length - 4])}\n`
      : `No recommendations in ${all ? 'any namespace' : ctx.namespace}.\n`,
  );
  return 0;
}

const DGD = (version: string): ResourceType => ({
  group: 'nvidia.com',
  version,
  plural: 'dynamographdeployments',
  namespaced: true,
});

/** The owned fields now and what the proposal sets: recorded once a rollout began, else planned now. */
async function change(
  ctx: Ctx,
  r: TuningRecommendation,
): Promise<{ from: OwnedFields; to: OwnedFields; body?: object; note?: string }> {
  const recorded = r.status?.rollout;
  const version = r.spec.targetRef.apiVersion.split('/')[1] ?? 'v1beta1';
  let target: { metadata: { name: string; namespace?: string }; spec?: unknown } | undefined;
  try {
    target = await ctx.client.get(pathOf(DGD(version), ctx.namespace, r.spec.targetRef.name));
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const graph = target ? readTargetGraph(target) : undefined;
  if (recorded?.baseline && recorded.target) {
    const body =
      target && graph && !('error' in graph) ? applyBody(target, graph.shape, recorded.target) : undefined;
    return { from: recorded.baseline, to: recorded.target, body };
  }
  if (!target) throw new UsageError(`the target ${r.spec.targetRef.name} is not found`);
  if (!graph || 'error' in graph)
    throw new UsageError(`the target cannot be read: ${graph && 'error' in graph ? graph.error : ''}`);
  const owned = readOwned(target, graph, new Map());
  const read = readDynamoBaseline(target as never, [r.spec.baseline.gpuType]);
  if ('error' in read) throw new UsageError(read.error);
  const plan = planChange(owned, graph, read.settings, r.spec.proposal);
  if ('unsupported' in plan)
    return {
      from: owned,
      to: owned,
      note: `servetune cannot apply this change in place: ${plan.unsupported}`,
    };
  return {
    from: owned,
    to: plan.target,
    body: applyBody(target, graph.shape, plan.target),
    note: plan.notes.join('; ') || undefined,
  };
}

function fieldDiff(from: OwnedFields, to: OwnedFields): string[] {
  const lines: string[] = [];
  for (const t of to.components) {
    const f = from.components.find((c) => c.name === t.name) ?? { name: t.name };
    const parts: string[] = [];
    if (f.replicas !== t.replicas) parts.push(`    replicas: ${f.replicas ?? '-'} -> ${t.replicas ?? '-'}`);
    if (f.gpus !== t.gpus) parts.push(`    GPUs per pod: ${f.gpus ?? '-'} -> ${t.gpus ?? '-'}`);
    if (JSON.stringify(f.args) !== JSON.stringify(t.args)) {
      parts.push(`  - args: ${JSON.stringify(f.args ?? [])}`);
      parts.push(`  + args: ${JSON.stringify(t.args ?? [])}`);
    }
    if (JSON.stringify(f.env) !== JSON.stringify(t.env))
      parts.push(`    env: ${JSON.stringify(f.env ?? [])} -> ${JSON.stringify(t.env ?? [])}`);
    if (t.scalingAdapter) parts.push(`    (replicas through the scaling adapter ${t.scalingAdapter})`);
    if (parts.length) lines.push(`  component ${t.name}:`, ...parts);
  }
  return lines.length ? lines : ['  (no change to the fields servetune owns)'];
}

const ms = (v?: number) => (v === undefined ? '-' : `${v.toFixed(1)} ms`);
const span = (i?: { low: number; high: number }, unit = '') =>
  i ? `[${i.low.toFixed(1)}, ${i.high.toFixed(1)}]${unit}` : '';

async function describe(ctx: Ctx, name: string): Promise<number> {
  const r = await get(ctx, name);
  const s = r.spec;
  const p = s.predicted;
  const iv = p.intervals;
  const c = await change(ctx, r).catch((e: Error) => ({ error: e.message }));
  const o: string[] = [];
  o.push(
    `Name:        ${r.metadata.name}`,
    `Namespace:   ${ctx.namespace}`,
    `Target:      ${s.targetRef.kind} ${s.targetRef.name}`,
  );
  o.push(
    `Tuning:      ${s.deploymentTuning} (objective ${s.objective})`,
    `State:       ${r.status?.state ?? 'Pending'}${r.status?.message ? ` - ${r.status.message}` : ''}`,
  );
  if (s.review)
    o.push(
      `Review:      ${s.review.decision} by ${s.review.by}${s.review.reason ? ` (${s.review.reason})` : ''}`,
    );
  if (s.rollbackRequest)
    o.push(
      `Rollback:    requested by ${s.rollbackRequest.by}${s.rollbackRequest.reason ? ` (${s.rollbackRequest.reason})` : ''}`,
    );
  o.push('', 'Change (fields servetune owns on the target):');
  if ('error' in c) o.push(`  ${c.error}`);
  else {
    o.push(...fieldDiff(c.from, c.to));
    if (c.note) o.push(`  note: ${c.note}`);
  }
  o.push('', 'Predicted (simulated over the same traffic; intervals over sub-windows of the trace):');
  o.push(
    renderTable(
      ['', 'baseline', 'interval', 'proposal', 'interval'],
      [
        ['GPUs', String(s.baseline.gpus), '', String(s.proposal.gpus), ''],
        ...(s.baseline.planner.enabled || s.proposal.planner.enabled
          ? [['Planner', plannerSummary(s.baseline.planner), '', plannerSummary(s.proposal.planner), '']]
          : []),
        [
          'TTFT p90',
          ms(p.baseline.ttftMs.p90),
          span(iv?.baseline.ttftP90Ms),
          ms(p.proposal.ttftMs.p90),
          span(iv?.proposal.ttftP90Ms),
        ],
        [
          'ITL p90',
          ms(p.baseline.itlMs.p90),
          span(iv?.baseline.itlP90Ms),
          ms(p.proposal.itlMs.p90),
          span(iv?.proposal.itlP90Ms),
        ],
        [
          'objective',
          p.baseline.objectiveValue.toFixed(2),
          span(iv?.baseline.objectiveValue),
          p.proposal.objectiveValue.toFixed(2),
          span(iv?.proposal.objectiveValue),
        ],
        ['meets SLOs', String(p.baseline.meetsSlos), '', String(p.proposal.meetsSlos), ''],
      ],
    )
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n'),
  );
  o.push(
    `  gain: ${p.gainPercent}%${p.gainPercentLow !== undefined ? ` (at least ${p.gainPercentLow}% across the uncertainty)` : ''}`,
  );
  if (s.transition) {
    const t = s.transition;
    o.push(
      '',
      'Transition:',
      `  ${t.workersStarting} worker(s) start cold (${t.coldStartSeconds} s each), ${t.extraGpuHours} GPU-hours held twice, ${t.stages} stage(s); pays back in ${t.paybackHours} h`,
      ...simulatedTransitionLines(t),
    );
  }
  if (s.frontier.length) {
    o.push('', 'Frontier (meets the SLOs, fewer GPUs against lower TTFT):');
    o.push(
      renderTable(
        ['configuration', 'GPUs', 'TTFT p90', 'ITL p90', 'tok/s/GPU'],
        s.frontier
          .slice(0, 8)
          .map((f) => [f.summary, f.gpus, ms(f.ttftP90Ms), ms(f.itlP90Ms), f.outputTokensPerSecondPerGpu]),
        [2, 3],
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  o.push('', 'Why:', `  ${s.explanation}`);
  const ts = r.status?.rollout?.transitions ?? [];
  if (ts.length) {
    o.push('', 'Rollout:');
    for (const t of ts)
      o.push(
        `  ${t.time}  ${t.state.padEnd(11)} ${t.reason}${t.actor ? ` by ${t.actor}` : ''}${t.message ? `: ${t.message}` : ''}`,
      );
  }
  const ws = r.status?.rollout?.windows ?? [];
  if (ws.length) {
    o.push('', 'Verification (observed against predicted):');
    for (const w of ws)
      o.push(
        `  ${w.end}  ${w.outcome.padEnd(12)} TTFT p90 ${ms(w.ttftMs?.p90)}, ITL p90 ${ms(w.itlMs?.p90)}, ${w.requests ?? '-'} requests - ${w.message ?? ''}`,
      );
  }
  ctx.out.write(`${o.join('\n')}\n`);
  return 0;
}

async function diff(ctx: Ctx, name: string): Promise<number> {
  const r = await get(ctx, name);
  const c = await change(ctx, r);
  if (!c.body) {
    ctx.out.write(`# ${c.note ?? 'no patch: the target is not readable'}\n`);
    return 0;
  }
  ctx.out.write(
    `# Server-side apply, field manager "servetune", to ${r.spec.targetRef.kind} ${r.spec.targetRef.name}:\n${stringify(c.body, { lineWidth: 0 })}`,
  );
  return 0;
}

async function whoami(ctx: Ctx): Promise<string> {
  const r = await ctx.client.create<{ status?: { userInfo?: { username?: string } } }>(
    '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  );
  const u = r.status?.userInfo?.username;
  if (!u) throw new UsageError('the API server did not say who you are (SelfSubjectReview)');
  return u;
}

async function reviewCmd(
  ctx: Ctx,
  name: string,
  decision: 'Approved' | 'Rejected',
  reason?: string,
): Promise<number> {
  const r = await get(ctx, name);
  if (r.spec.review)
    throw new UsageError(
      `${name} was already ${r.spec.review.decision.toLowerCase()} by ${r.spec.review.by}`,
    );
  const by = await whoami(ctx);
  await ctx.client.mergePatch(pathOf(TUNING_RECOMMENDATIONS, ctx.namespace, name), {
    spec: { review: { decision, by, ...(reason && { reason }) } },
  });
  ctx.out.write(`${name} ${decision.toLowerCase()} by ${by}.\n`);
  return 0;
}

async function rollbackCmd(ctx: Ctx, name: string, reason?: string): Promise<number> {
  const r = await get(ctx, name);
  if (r.spec.rollbackRequest)
    throw new UsageError(`a rollback of ${name} was already requested by ${r.spec.rollbackRequest.by}`);
  const by = await whoami(ctx);
  await ctx.client.mergePatch(pathOf(TUNING_RECOMMENDATIONS, ctx.namespace, name), {
    spec: { rollbackRequest: { by, ...(reason && { reason }) } },
  });
  ctx.out.write(`Rollback of ${name} requested by ${by}.\n`);
  return 0;
}

async function report(ctx: Ctx, name: string, file: string): Promise<number> {
  const r = await get(ctx, name);
  let tuning: DeploymentTuning | undefined;
  try {
    tuning = await ctx.client.get<DeploymentTuning>(
      pathOf(DEPLOYMENT_TUNINGS, ctx.namespace, r.spec.deploymentTuning),
    );
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const c = await change(ctx, r).catch(() => undefined);
  writeFileSync(file, renderRecommendationHtml(r, tuning, c ? fieldDiff(c.from, c.to) : []));
  ctx.out.write(`Wrote ${file}.\n`);
  return 0;
}

/** The simulated transition in `describe`, or why there is none. */
function simulatedTransitionLines(t: NonNullable<TuningRecommendation['spec']['transition']>): string[] {
  if (t.notSimulated) return [`  not simulated: ${t.notSimulated}`];
  const s = t.simulated;
  if (!s) return [];
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  return [
    `  simulated: changed at ${s.changeAtSeconds} s into the window, settled after ${s.durationSeconds} s (${s.workersStarted} started, ${s.workersDrained} drained)`,
    `    ${s.requests} requests during it: TTFT p90 ${ms(s.ttftP90Ms.transition)} (steady ${ms(s.ttftP90Ms.steady)}), ITL p90 ${ms(s.itlP90Ms.transition)} (steady ${ms(s.itlP90Ms.steady)}), ${s.queuedLonger} queued longer (up to ${ms(s.maxExtraQueueMs)} more)`,
    `    prefix hit rate of new workers ${pct(s.prefixHitRate.transition)} (steady ${pct(s.prefixHitRate.steady)})${s.sloMissSeconds !== undefined ? `; ${s.sloMissSeconds} s over twice the SLOs` : ''}`,
  ];
}
