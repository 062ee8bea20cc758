import { catalogCommand } from './catalog.ts';
import { UsageError } from './errors.ts';
import { operatorCommand } from './operator.ts';
import { simulateCommand } from './simulate.ts';
import { sweepCommand } from './sweep.ts';

type Command = (argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream) => Promise<number>;

const COMMANDS: Record<string, { help: string; run: Command }> = {
  simulate: { help: 'replay a trace or synthetic traffic through simulated workers', run: simulateCommand },
  operator: { help: 'run the DeploymentTuning controller against a cluster', run: operatorCommand },
  sweep: { help: 'search deployments for a workload and map the Pareto frontier', run: sweepCommand },
  catalog: { help: 'list the GPUs and models the hardware timing model knows', run: catalogCommand },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)}${c.help}`);
  return `Usage: servetune <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun 'servetune <command> --help' for its options.\n`;
}

/** Runs the CLI; returns the exit code. User errors print one line and return 2. */
export async function main(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    err.write(`servetune: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  try {
    return await cmd.run(rest, out, err);
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`servetune ${name}: ${e.message}\n`);
      return 2;
    }
    err.write(`servetune ${name}: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
