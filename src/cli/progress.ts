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
