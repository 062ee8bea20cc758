#!/usr/bin/env node
// Entry point for the `servetune` command; Node >= 22.18 runs the TypeScript sources directly.
import { runProcess } from '../src/cli/main.ts';

await runProcess();
