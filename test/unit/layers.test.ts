import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The layer rules of biome.json (noRestrictedImports per src/ folder) fire on real violations: probe files
 * with one import each are linted with the repository's biome.json in a temporary tree, and the diagnostics
 * are matched per file. The repository itself passing the rules is `npm run lint`'s job.
 */
const root = join(import.meta.dirname, '..', '..');
const biome = join(root, 'node_modules', '.bin', 'biome');

// [file under src/, import specifier (`module#name` for a named import), refused?]
const probes: [string, string, boolean][] = [
  ['sim/probe.ts', '../hardware/catalog.ts', true],
  ['sim/engine/probe.ts', '../../config/schema.ts', true],
  ['sim/probe.ts', '../operator/manager.ts', true],
  ['sim/probe.ts', 'node:fs', true],
  ['sim/probe.ts', 'node:net', true],
  ['sim/probe.ts', 'node:http', true],
  ['sim/probe.ts', 'fs', true],
  ['sim/probe.ts', '@kubernetes/client-node', true],
  ['sim/probe.ts', 'pino', true],
  ['sim/probe.ts', './timing/hardware.ts', false],
  ['sim/probe.ts', 'zod', false],
  ['hardware/probe.ts', '../sim/simulation.ts', false],
  ['hardware/probe.ts', '../config/schema.ts', true],
  ['hardware/probe.ts', '../sweep/sweep.ts', true],
  ['hardware/probe.ts', 'node:fs', false],
  ['config/probe.ts', '../hardware/setup.ts', false],
  ['config/probe.ts', '../sweep/sweep.ts', true],
  ['sweep/probe.ts', '../config/run.ts', false],
  ['sweep/probe.ts', '../telemetry/trace/index.ts', true],
  ['telemetry/probe.ts', '../sweep/sweep.ts', false],
  ['telemetry/probe.ts', '../api/index.ts', true],
  ['api/probe.ts', '../telemetry/trace/index.ts', false],
  ['api/probe.ts', '../operator/manager.ts', true],
  ['operator/probe.ts', '../api/index.ts', false],
  ['operator/probe.ts', '../twin/twin.ts', true],
  ['operator/sweep/probe.ts', '../../cli/main.ts', true],
  ['twin/probe.ts', '../operator/kube/client.ts', false],
  ['twin/probe.ts', '../cli/main.ts', true],
  ['cli/probe.ts', '../twin/twin.ts', false],
  ['cli/probe.ts', '../sim/simulation.ts', false],
  // undici pools only through httpAgent() (HTTP/1.1; src/telemetry/http-agent.ts); `#name` is a named import.
  ['telemetry/probe.ts', 'undici#Agent', true],
  ['operator/probe.ts', 'undici#Pool', true],
  ['twin/probe.ts', 'undici#Client', true],
  ['cli/probe.ts', 'undici#setGlobalDispatcher', true],
  ['operator/probe.ts', 'undici#request', false],
];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Diagnostic {
  category: string;
  message: string;
  location: { path: string };
}

function lintProbes(): Map<string, Diagnostic[]> {
  const dir = mkdtempSync(join(tmpdir(), 'servetune-layers-'));
  dirs.push(dir);
  copyFileSync(join(root, 'biome.json'), join(dir, 'biome.json'));
  const files = probes.map(([file, spec], i) => {
    const path = join('src', file.replace(/\.ts$/, `-${i}.ts`));
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    const [module, name] = spec.split('#');
    const what = name ? `{ ${name} as probe }` : 'probe';
    writeFileSync(join(dir, path), `import ${what} from '${module}';\n\nexport const used = probe;\n`);
    return path;
  });
  const run = spawnSync(biome, ['lint', '--reporter=json', '--only=style/noRestrictedImports', 'src'], {
    cwd: dir,
    encoding: 'utf8',
  });
  const report = JSON.parse(run.stdout) as { diagnostics: Diagnostic[] };
  const byFile = new Map<string, Diagnostic[]>(files.map((f) => [f, []]));
  for (const d of report.diagnostics) byFile.get(d.location.path)?.push(d);
  return new Map(files.map((f, i) => [probes[i].join(' '), byFile.get(f) ?? []]));
}

describe('layer rules (biome noRestrictedImports)', () => {
  const results = lintProbes();

  it.each(probes)('src/%s importing %s: refused %s', (file, spec, refused) => {
    const diagnostics = results.get([file, spec, refused].join(' '));
    expect(diagnostics, 'probe was linted').toBeDefined();
    expect(diagnostics!.length > 0).toBe(refused);
    for (const d of diagnostics!) expect(d.category).toBe('lint/style/noRestrictedImports');
  });

  it('covers every layer folder under src/ (cli, the top, may import anything)', () => {
    const config = JSON.parse(readFileSync(join(root, 'biome.json'), 'utf8')) as {
      overrides: { includes: string[] }[];
    };
    const ruled = new Set(config.overrides.flatMap((o) => o.includes));
    const folders = readdirSync(join(root, 'src'), { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name !== 'cli')
      .map((e) => `src/${e.name}/**`);
    for (const f of folders) expect(ruled, f).toContain(f);
  });
});
