import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadCatalog } from '../../../src/cli/hardware.ts';
import { PlannerConfigSchema } from '../../../src/sim/planner/config.ts';
import { SearchSpaceSchema } from '../../../src/sweep/space.ts';
import { cli } from '../../support/cli.ts';

/** Every commented example under config/examples/ loads (and the simulation ones run) as its README says. */
const dir = join(import.meta.dirname, '..', '..', '..', 'config', 'examples');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

const loaders: Record<string, (path: string) => Promise<void>> = {
  'simulate.yaml': async (path) => {
    const r = await cli('simulate', '--config', path, '--quiet');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  },
  'simulate-hardware.yaml': async (path) => {
    const r = await cli('simulate', '--config', path, '--quiet');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  },
  'space.yaml': async (path) => {
    const space = SearchSpaceSchema.parse(parse(readFileSync(path, 'utf8')));
    expect(space.topologies).toEqual(['aggregated', 'disaggregated']);
  },
  'gpus.yaml': async (path) => {
    const catalog = await loadCatalog({ gpusFile: path });
    expect(catalog.gpu('h100-500w').id).toBe('h100_lowpower');
  },
  'models.yaml': async (path) => {
    const catalog = await loadCatalog({ modelsFile: path });
    expect(catalog.model('example-org/my-llama-13b').id).toBe('my-llama-13b');
  },
  'planner.yaml': async (path) => {
    const planner = PlannerConfigSchema.parse(parse(readFileSync(path, 'utf8')));
    expect(planner.optimization_target).toBe('sla');
  },
};

describe('config/examples', () => {
  it('has a loader here for every example (a new example gets a test)', () => {
    expect(files.sort()).toEqual(Object.keys(loaders).sort());
  });

  it.each(files)('%s starts with a comment saying how to use it, and loads', async (file) => {
    const path = join(dir, file);
    expect(readFileSync(path, 'utf8')).toMatch(/^# servetune /);
    await loaders[file](path);
  });
});
