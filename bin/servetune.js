#!/usr/bin/env node
// Entry point for the `servetune` command; Node >= 22.18 runs the TypeScript sources directly. The compile
// cache is enabled before the first TypeScript module loads, so every module's type-stripped, compiled form
// comes from the cache after the first run (the type stripper itself then never loads).
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { runProcess } = await import('../src/cli/main.ts');
await runProcess();
