import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main.ts';

/** Runs the CLI in-process and captures its output. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d) => {
    o += d;
  });
  err.on('data', (d) => {
    e += d;
  });
  const code = await main(argv, out, err);
  return { code, out: o, err: e };
}
