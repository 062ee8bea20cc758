/**
 * Compact storage of measured latencies: each value is log2(ms) on a fixed grid of 1/2048 (0.034 % steps),
 * offset by 16 and stored as an unsigned 16-bit integer, little-endian, base64 in JSON. 0 marks a shape that
 * was not measured. This keeps the bundled kernel tables at ~2 bytes per measurement instead of ~7 as text.
 */
const SCALE = 2048;
const OFFSET = 16;

export function encodeLatencies(values: readonly (number | null)[]): string {
  const buf = Buffer.alloc(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    let code = 0;
    if (v !== null && Number.isFinite(v) && v > 0) {
      code = Math.round((Math.log2(v) + OFFSET) * SCALE);
      if (code < 1 || code > 0xffff) throw new Error(`latency ${v} ms out of the encodable range`);
    }
    buf.writeUInt16LE(code, i * 2);
  }
  return buf.toString('base64');
}

/** Decodes to ms; unmeasured entries become NaN. */
export function decodeLatencies(text: string, expected: number): Float64Array {
  const buf = Buffer.from(text, 'base64');
  if (buf.length !== expected * 2) {
    throw new Error(`encoded table holds ${buf.length / 2} values, expected ${expected}`);
  }
  const out = new Float64Array(expected);
  for (let i = 0; i < expected; i++) {
    const code = buf.readUInt16LE(i * 2);
    out[i] = code === 0 ? Number.NaN : 2 ** (code / SCALE - OFFSET);
  }
  return out;
}
