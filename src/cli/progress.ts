/**
 * Progress on stderr: a redrawn bar on a terminal, plain lines (at most every few seconds) otherwise, so logs
 * of CI jobs stay readable.
 */
export class Progress {
  private readonly stream: NodeJS.WritableStream;
  private readonly tty: boolean;
  private lastLine = 0;
  private lastPhase = '';
  private readonly t0 = performance.now();
  private readonly quiet: boolean;

  constructor(stream: NodeJS.WritableStream = process.stderr, quiet = false) {
    this.stream = stream;
    this.tty = Boolean((stream as NodeJS.WriteStream).isTTY);
    this.quiet = quiet;
  }

  update(done: number, planned: number, phase: string): void {
    if (this.quiet) return;
    const elapsed = (performance.now() - this.t0) / 1000;
    if (this.tty) {
      const width = 28;
      const frac = planned > 0 ? done / planned : 0;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      this.stream.write(
        `\r[${bar}] ${done}/${planned} ${phase.padEnd(28).slice(0, 28)} ${elapsed.toFixed(1)}s `,
      );
      return;
    }
    const now = performance.now();
    if (phase !== this.lastPhase || now - this.lastLine > 5000 || done === planned) {
      this.stream.write(`progress: ${done}/${planned} evaluated (${phase}), ${elapsed.toFixed(1)} s\n`);
      this.lastLine = now;
      this.lastPhase = phase;
    }
  }

  done(): void {
    if (this.tty && !this.quiet) this.stream.write('\n');
  }
}

/**
 * Progress of one long simulation on stderr: nothing for the first few seconds (short runs stay quiet), then
 * the simulated time reached, requests done and in flight, and the speed; redrawn in place on a terminal,
 * a plain line every few seconds otherwise.
 */
export class RunProgress {
  private readonly stream: NodeJS.WritableStream;
  private readonly tty: boolean;
  private readonly quiet: boolean;
  private readonly t0 = performance.now();
  private lastLine = Number.NEGATIVE_INFINITY;
  private drew = false;
  /** Seconds of wall time before the first report (short runs print nothing). */
  private readonly quietS: number;

  constructor(stream: NodeJS.WritableStream, quiet = false, quietS = 3) {
    this.stream = stream;
    this.tty = Boolean((stream as NodeJS.WriteStream).isTTY);
    this.quiet = quiet;
    this.quietS = quietS;
  }

  update(p: { simulatedMs: number; done: number; inFlight: number; rowsRead?: number }): void {
    if (this.quiet) return;
    const now = performance.now();
    const wallS = (now - this.t0) / 1000;
    if (wallS < this.quietS) return;
    if (!this.tty && now - this.lastLine < 5000) return;
    this.lastLine = now;
    const speed = p.simulatedMs / 1000 / Math.max(wallS, 1e-9);
    const line =
      `progress: simulated ${formatDuration(p.simulatedMs / 1000)}, ${p.done.toLocaleString('en-US')} requests done` +
      ` (${p.inFlight.toLocaleString('en-US')} in flight), ${Math.round(p.done / wallS).toLocaleString('en-US')} requests/s,` +
      ` ${Math.round(speed).toLocaleString('en-US')}x real time, ${wallS.toFixed(0)} s`;
    if (this.tty) {
      this.stream.write(`\r${line}\u001b[K`);
      this.drew = true;
    } else this.stream.write(`${line}\n`);
  }

  done(): void {
    if (this.drew) this.stream.write('\n');
    this.drew = false;
  }
}

/** 3725 s -> "1h02m05s". */
export function formatDuration(s: number): string {
  const t = Math.floor(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(sec).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${s < 10 ? s.toFixed(1) : String(sec)}s`;
}
