import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Browser } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { launchChromium } from '../support/chromium.ts';
import { FIXTURES } from '../support/sim.ts';

/** The sweep's HTML report, rendered by headless Chromium: the Pareto plot must actually draw. */
describe('sweep HTML report in headless Chromium', () => {
  let browser: Browser;
  let html: string;
  let json: { candidates: { feasible: boolean; rank: number | null }[]; recommended: { id: number } | null };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servetune-report-'));
    html = join(dir, 'report.html');
    const jsonPath = join(dir, 'report.json');
    const out = new PassThrough();
    const err = new PassThrough();
    const code = await main(
      [
        'sweep',
        '--trace',
        `${FIXTURES}traces/conversation-sample.jsonl`,
        '--gpus',
        'h100:6',
        '--model',
        'llama-3.1-8b',
        '--tp',
        '1,2',
        '--routers',
        'round-robin,kv',
        '--slo',
        'ttft_p90=3000ms',
        '--threads',
        '2',
        '--quiet',
        '--html',
        html,
        '--json',
        jsonPath,
      ],
      out,
      err,
    );
    expect(code).toBe(0);
    json = JSON.parse(readFileSync(jsonPath, 'utf8'));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('renders the Pareto plot: points, frontier, recommended point and labelled axes, with no network', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1 });
    const external: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    await page.goto(`file://${html}`);
    const svg = page.locator('#pareto-latency');
    await expect(svg.count()).resolves.toBe(1);
    expect(await svg.locator('.x-label').textContent()).toMatch(/TTFT p90 \(ms\)/);
    expect(await svg.locator('.y-label').textContent()).toMatch(/tok\/s/);
    const feasible = json.candidates.filter((c) => c.rank !== null && c.feasible).length;
    const ranked = json.candidates.filter((c) => c.rank !== null).length;
    expect(feasible).toBeGreaterThan(1);
    expect(feasible).toBeLessThan(ranked); // the SLO splits the candidates
    expect(await svg.locator('circle.point.feasible').count()).toBe(feasible - 1); // the recommended one is drawn apart
    expect(await svg.locator('circle.point.infeasible').count()).toBe(ranked - feasible);
    const frontier = await svg.locator('polyline.frontier').getAttribute('points');
    expect((frontier ?? '').trim().split(/\s+/).length).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#candidates tbody tr').count()).toBe(json.candidates.length);

    // Pixels: the recommended marker is orange, a feasible point teal, the plot is not blank.
    const box = await svg.boundingBox();
    if (!box) throw new Error('plot has no box');
    const png = PNG.sync.read(await svg.screenshot());
    const pixel = (x: number, y: number) => {
      const i = (Math.round(y) * png.width + Math.round(x)) * 4;
      return [png.data[i], png.data[i + 1], png.data[i + 2]];
    };
    const centre = async (selector: string) => {
      const b = await page.locator(selector).first().boundingBox();
      if (!b) throw new Error(`${selector} not drawn`);
      return [b.x - box.x + b.width / 2, b.y - box.y + b.height / 2] as const;
    };
    const [rx, ry] = await centre('#pareto-latency-recommended');
    const [r, g, b] = pixel(rx, ry);
    expect(r).toBeGreaterThan(190);
    expect(g).toBeGreaterThan(90);
    expect(g).toBeLessThan(160);
    expect(b).toBeLessThan(90);
    // A feasible point away from the recommended one (its halo and label tint what they cover).
    const feasibleBoxes = await page
      .locator('#pareto-latency circle.point.feasible')
      .evaluateAll((els) =>
        els
          .map((e) => e.getBoundingClientRect())
          .map((b) => ({ x: b.x + b.width / 2, y: b.y + b.height / 2 })),
      );
    const far = feasibleBoxes.sort(
      (a, b) =>
        Math.hypot(b.x - box.x - rx, b.y - box.y - ry) - Math.hypot(a.x - box.x - rx, a.y - box.y - ry),
    )[0];
    const [fx, fy] = [far.x - box.x, far.y - box.y];
    const [fr, fg, fb] = pixel(fx, fy);
    expect(fg).toBeGreaterThan(fr + 40);
    expect(fb).toBeGreaterThan(fr + 20);
    let inked = 0;
    for (let i = 0; i < png.data.length; i += 4)
      if (png.data[i] + png.data[i + 1] + png.data[i + 2] < 600) inked++;
    expect(inked / (png.width * png.height)).toBeGreaterThan(0.01);
    expect(external).toEqual([]);
    await page.close();
  });
});
