import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatDuration, RunProgress } from '../../../src/cli/progress.ts';

function capture(tty: boolean): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  (stream as unknown as { isTTY: boolean }).isTTY = tty;
  let out = '';
  stream.on('data', (d) => {
    out += d;
  });
  return { stream, text: () => out };
}

const point = { simulatedMs: 3_725_000, done: 12_345, inFlight: 17 };

describe('run progress', () => {
  it('stays quiet for short runs and when asked', () => {
    const a = capture(false);
    new RunProgress(a.stream).update(point);
    expect(a.text()).toBe('');
    const b = capture(false);
    new RunProgress(b.stream, true, 0).update(point);
    expect(b.text()).toBe('');
  });

  it('writes plain lines off a terminal (at most every few seconds) and redraws one on a terminal', () => {
    const plain = capture(false);
    const p = new RunProgress(plain.stream, false, 0);
    p.update(point);
    p.update(point); // within 5 s: no second line
    p.done();
    const lines = plain
      .text()
      .split('\n')
      .filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^progress: simulated 1h02m05s, 12,345 requests done \(17 in flight\), [\d,]+ requests\/s, [\d,]+x real time, \d+ s$/,
    );
    const tty = capture(true);
    const q = new RunProgress(tty.stream, false, 0);
    q.update(point);
    q.update(point);
    q.done();
    expect(tty.text().startsWith('\rprogress: simulated 1h02m05s')).toBe(true);
    expect(tty.text().match(/\r/g)).toHaveLength(2);
    expect(tty.text().endsWith('\n')).toBe(true);
  });

  it('formats durations', () => {
    expect(formatDuration(3725)).toBe('1h02m05s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(4.25)).toBe('4.3s');
  });
});
