import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSlos } from '../../../src/sweep/objective.ts';
import { renderSweepHtml } from '../../../src/sweep/report-html.ts';
import { SearchSpaceSchema } from '../../../src/sweep/space.ts';
import { labelledTicks, linearTicks, logTicks, tickLabel } from '../../../src/sweep/svg.ts';
import { runSweep } from '../../../src/sweep/sweep.ts';
import { conversationSample } from '../../support/sim.ts';

describe('shared SVG ticks (src/sweep/svg.ts)', () => {
  it('uses 1-2-5 ticks over a few decades and decades only over many', () => {
    expect(logTicks(1, 500)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500]);
    expect(logTicks(3, 2e6)).toEqual([10, 100, 1000, 1e4, 1e5, 1e6]);
    expect(linearTicks(0, 1000, 6)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(tickLabel(12_500)).toBe('12.5k');
    expect(tickLabel(2_000_000)).toBe('2M');
  });

  it('never lets two axis labels overlap ("5001000"), whatever the ticks and scale', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1e5, noNaN: true }),
        fc.double({ min: 1.5, max: 1e6, noNaN: true }),
        fc.integer({ min: 100, max: 1200 }),
        (lo, ratio, width) => {
          const hi = lo * ratio;
          const axes: [boolean, number[]][] = [
            [true, logTicks(lo, hi, [1, 2, 5])],
            [false, linearTicks(lo, hi, 12)],
          ];
          for (const [log, ticks] of axes) {
            const at = (t: number) =>
              log ? (Math.log(t / lo) / Math.log(hi / lo)) * width : ((t - lo) / (hi - lo)) * width;
            const shown = ticks.filter((_, i) => labelledTicks(ticks, at)[i]);
            expect(shown.length).toBeGreaterThan(0);
            for (let i = 1; i < shown.length; i++) {
              const gap = at(shown[i]) - at(shown[i - 1]);
              const halfWidths = ((tickLabel(shown[i]).length + tickLabel(shown[i - 1]).length) * 6.5) / 2;
              expect(gap).toBeGreaterThanOrEqual(halfWidths + 8 - 1e-9);
            }
          }
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });
});

describe('sweep HTML report', () => {
  const workload = conversationSample(300);
  const space = SearchSpaceSchema.parse({
    tensorParallel: [1],
    workers: { min: 1, max: 4 },
    router: { modes: ['round-robin', 'kv'], overlapWeights: [1] },
  });
  const base = {
    workload,
    space,
    budget: [{ type: 'h100', count: 4 }],
    objective: 'throughput_per_gpu' as const,
  };

  it('draws the frontier through candidates that meet the SLOs only, with units in every tooltip', async () => {
    const r = await runSweep({ ...base, slos: parseSlos('ttft_p90=2000ms') }, { threads: 0 });
    const feasible = new Set(r.candidates.filter((c) => c.feasible).map((c) => c.id));
    expect(feasible.size).toBeGreaterThan(1);
    expect(feasible.size).toBeLessThan(r.candidates.length); // the SLO splits them
    for (const id of [...r.frontier.latency, ...r.frontier.userSpeed]) expect(feasible.has(id)).toBe(true);
    const html = renderSweepHtml(r);
    const plot = /<svg id="pareto-latency"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    const line = /<polyline class="frontier" points="([^"]+)"/.exec(plot)?.[1] ?? '';
    const points = line.split(' ');
    expect(points.length).toBe(r.frontier.latency.length);
    // Every vertex of the line sits on a feasible point, none on a hollow (missed) one.
    const hollow = [
      ...plot.matchAll(/class="point infeasible" data-id="\d+" cx="([\d.]+)" cy="([\d.]+)"/g),
    ].map((m) => `${m[1]},${m[2]}`);
    expect(hollow.length).toBeGreaterThan(0);
    for (const p of points) expect(hollow).not.toContain(p);
    for (const title of plot.matchAll(/<title>([^<]+)<\/title>/g)) {
      expect(title[1]).toMatch(/ ms, [\d.,k]+ tok\/s\/GPU/);
    }
    expect(plot).toContain('>recommended</text></g>'); // a legend entry: something is recommended
  });

  it('has no "recommended" legend entry (or frontier) when nothing meets the SLOs', async () => {
    const r = await runSweep({ ...base, slos: parseSlos('ttft_p90=1ms') }, { threads: 0 });
    expect(r.recommended).toBeNull();
    expect(r.frontier.latency).toEqual([]);
    const html = renderSweepHtml(r);
    const legends = [...html.matchAll(/<g class="legend"[\s\S]*?<\/g><\/g>/g)].map((m) => m[0]);
    expect(legends).toHaveLength(2);
    for (const legend of legends) {
      expect(legend).toContain('misses SLOs');
      expect(legend).not.toContain('recommended');
      expect(legend).not.toContain('Pareto frontier');
      expect(legend).not.toContain('meets SLOs');
    }
    expect(html).not.toContain('class="frontier"');
  });
});
