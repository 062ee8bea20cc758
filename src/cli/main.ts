import { enableCompileCache } from 'node:module';
import { UsageError } from './errors.ts';

type Command = (argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream) => Promise<number>;

// Commands load their modules on first use: a command pays only for what it runs, and when started from
// the command line the modules load after the compile cache is on (see the end of this file).
const COMMANDS: Record<string, { help: string; run: Command }> = {
  simulate: {
    help: 'replay a trace or synthetic traffic through simulated workers',
    run: async (argv, out, err) => (await import('./simulate.ts')).simulateCommand(argv, out, err),
  },
  operator: {
    help: 'run the DeploymentTuning controller against a cluster',
    run: async (argv, out) => (await import('./operator.ts')).operatorCommand(argv, out),
  },
  sweep: {
    help: 'search deployments for a workload and map the Pareto frontier',
    run: async (argv, out, err) => (await import('./sweep.ts')).sweepCommand(argv, out, err),
  },
  profile: {
    help: 'summarise recorded traffic (trace, request traces, Prometheus) as a workload profile',
    run: async (argv, out) => (await import('./profile.ts')).profileCommand(argv, out),
  },
  drift: {
    help: 'compare two windows of traffic dimension by dimension and say whether it drifted',
    run: async (argv, out) => (await import('./drift.ts')).driftCommand(argv, out),
  },
  kubectl: {
    help: 'review, diff and roll back recommendations (also `kubectl servetune` via bin/kubectl-servetune)',
    run: async (argv, out) => (await import('./kubectl.ts')).kubectlCommand(argv, out),
  },
  twin: {
    help: 'run a live twin of a Dynamo deployment: simulated workers, an OpenAI API, Dynamo metrics',
    run: async (argv, out) => (await import('./twin.ts')).twinCommand(argv, out),
  },
  catalog: {
    help: 'list the GPUs and models the hardware timing model knows',
    run: async (argv, out) => (await import('./catalog.ts')).catalogCommand(argv, out),
  },
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

/**
 * Runs the CLI as a process. Node's on-disk compile cache (NODE_COMPILE_CACHE, by default under the OS
 * temporary directory) keeps the type-stripped, compiled sources between runs, which cuts the start-up
 * from about a second to a third of that.
 */
export async function runProcess(): Promise<void> {
  enableCompileCache();
  const from = userDirectory(process.env);
  if (from !== undefined) process.chdir(from);
  // bin/kubectl-servetune runs one command (the environment carries it through a re-run of the entry).
  const fixed = process.env.SERVETUNE_COMMAND;
  process.exitCode = await main(fixed ? [fixed, ...process.argv.slice(2)] : process.argv.slice(2));
}

/**
 * The directory the user typed the command in. npm runs a script from the package root, so under
 * `npm run servetune -- --trace t.jsonl` a relative path would resolve from there; npm passes the user's
 * directory as INIT_CWD. Only a script that runs this command counts (a test run spawning the CLI keeps its
 * own directory).
 */
export function userDirectory(env: NodeJS.ProcessEnv): string | undefined {
  const script = env.npm_lifecycle_script ?? '';
  const runsCli = script.includes('bin/servetune.js') || script.includes('src/cli/main.ts');
  return runsCli && env.INIT_CWD ? env.INIT_CWD : undefined;
}

if (import.meta.main) await runProcess();
