#!/usr/bin/env node
// Entry point for the `servetune` command; Node >= 22.18 runs the TypeScript sources directly. With an
// older Node, or before the dependencies are installed, it runs itself through hack/run.sh, which installs
// the project's pinned Node 24 and the locked dependencies first.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// On CPUs with memory protection keys (PKU), V8 guards its JIT pages with them, and a process that compiles
// code on several threads (sweeps evaluate on worker threads) can abort with "Check failed:
// jit_page.has_value()" (a V8 race in Node 18-24). The flag cannot be set after start-up or in
// NODE_OPTIONS, so on such CPUs the command re-runs itself once with the protection off.
const FLAG = '--no-memory-protection-keys';
const root = fileURLToPath(new URL('..', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
const oldNode = major < 22 || (major === 22 && minor < 18);
// A fresh clone has no dependencies yet (an image or an npm install has them: zod is one the CLI always loads).
const depsMissing = !existsSync(join(root, 'node_modules', 'zod', 'package.json'));
if ((oldNode || depsMissing) && !process.env.SERVETUNE_VIA_RUN_SH) {
  // Without a recent enough Node or the dependencies, run through hack/run.sh: it installs both on first use
  // (messages on stderr only) and runs this file again with the project's Node.
  const child = spawn(
    'sh',
    [join(root, 'hack', 'run.sh'), 'node', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: { ...process.env, SERVETUNE_VIA_RUN_SH: '1' },
    },
  );
  forwardExit(child);
} else if (oldNode) {
  // An older Node would fail on the TypeScript sources with a confusing error; say what is needed instead.
  process.stderr.write(
    `servetune: needs Node.js >= 22.18 (this is ${process.version}); hack/run.sh did not provide it\n`,
  );
  process.exit(1);
} else if (!process.execArgv.includes(FLAG) && cpuHasPku()) {
  const child = spawn(process.execPath, [FLAG, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  forwardExit(child);
} else {
  // The compile cache is enabled before the first TypeScript module loads, so every module's type-stripped,
  // compiled form comes from the cache after the first run (the type stripper itself then never loads).
  nodeModule.enableCompileCache();
  const { runProcess } = await import('../src/cli/main.ts');
  await runProcess();
}

/** Runs as the child: its exit code and signal become ours, and signals we get reach it once. */
function forwardExit(child) {
  // Ctrl-C in a terminal already reaches the child (same process group); forwarding it too would count as a
  // second Ctrl-C, which makes a sweep quit without its partial results.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (signal !== 'SIGINT' || !process.stdin.isTTY) child.kill(signal);
    });
  }
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
}

function cpuHasPku() {
  if (process.platform !== 'linux') return false;
  try {
    return /^flags\s*:.*\bpku\b/m.test(readFileSync('/proc/cpuinfo', 'latin1'));
  } catch {
    return false;
  }
}
