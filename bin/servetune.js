#!/usr/bin/env node
// Entry point for the `servetune` command; Node >= 22.18 runs the TypeScript sources directly.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';

// On CPUs with memory protection keys (PKU), V8 guards its JIT pages with them, and a process that compiles
// code on several threads (sweeps evaluate on worker threads) can abort with "Check failed:
// jit_page.has_value()" (a V8 race in Node 18-24). The flag cannot be set after start-up or in
// NODE_OPTIONS, so on such CPUs the command re-runs itself once with the protection off.
const FLAG = '--no-memory-protection-keys';
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  // An older Node would fail on the TypeScript sources with a confusing error; say what is needed instead.
  process.stderr.write(
    `servetune: needs Node.js >= 22.18 (this is ${process.version}); \`npm run servetune -- ARGS\` runs it with the project's Node 24\n`,
  );
  process.exit(1);
} else if (!process.execArgv.includes(FLAG) && cpuHasPku()) {
  const child = spawn(process.execPath, [FLAG, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
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
} else {
  // The compile cache is enabled before the first TypeScript module loads, so every module's type-stripped,
  // compiled form comes from the cache after the first run (the type stripper itself then never loads).
  nodeModule.enableCompileCache();
  const { runProcess } = await import('../src/cli/main.ts');
  await runProcess();
}

function cpuHasPku() {
  if (process.platform !== 'linux') return false;
  try {
    return /^flags\s*:.*\bpku\b/m.test(readFileSync('/proc/cpuinfo', 'latin1'));
  } catch {
    return false;
  }
}
