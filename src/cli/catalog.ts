import type { Catalog } from '../hardware/catalog.ts';
import type { Gpu } from '../hardware/gpus.ts';
import { kvBytesPerToken, type ModelSpec, paramCounts } from '../hardware/models.ts';
import { UsageError } from './errors.ts';
import { checkOutputPath, writeJson } from './files.ts';
import { type FlagSpec, parseFlags, renderHelp } from './flags.ts';
import { loadCatalog } from './hardware.ts';
import { renderTable } from './table.ts';

export const CATALOG_FLAGS: FlagSpec[] = [
  { name: 'gpus-file', path: null, kind: 'string', metavar: 'FILE', help: 'YAML/JSON file of extra GPUs' },
  {
    name: 'models-file',
    path: null,
    kind: 'string',
    metavar: 'FILE',
    help: 'YAML/JSON file of extra models',
  },
  { name: 'json', path: null, kind: 'boolean', help: 'print the catalog as JSON' },
  { name: 'out', path: null, kind: 'string', metavar: 'FILE', help: 'write the JSON catalog to a file' },
  { name: 'help', aliases: ['h'], path: null, kind: 'boolean', help: 'show this help' },
];

const USAGE = `Usage: servetune catalog [--gpus-file FILE] [--models-file FILE] [--json]

Lists the GPUs and models the hardware timing model knows. "measured" GPUs have bundled vLLM kernel
tables; the others are priced by a roofline from their specs with fitted efficiencies.`;

const fixed = (v: number, d = 0) =>
  v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

function gpuRow(g: Gpu): string[] {
  const s = g.spec;
  const link = s.nvlinkGBps > 0 ? `NVLink ${fixed(s.nvlinkGBps)} GB/s` : `PCIe ${fixed(s.pcieGBps)} GB/s`;
  return [
    g.id,
    s.name,
    s.aliases.join(', ') || '-',
    s.productLabels.join(', ') || '-',
    fixed(s.hbmGiB, 0),
    fixed(s.hbmBandwidthGBps / 1000, 2),
    fixed(s.tflops.bf16),
    s.tflops.fp8 !== undefined ? fixed(s.tflops.fp8) : '-',
    s.tflops.fp4 !== undefined ? fixed(s.tflops.fp4) : '-',
    link,
    g.kernelTables ? 'measured' : 'roofline',
  ];
}

function modelRow(m: ModelSpec): string[] {
  const p = paramCounts(m);
  const kv = kvBytesPerToken(m);
  const experts = m.moe ? `${m.moe.experts}/${m.moe.expertsPerToken}` : '-';
  return [
    m.id,
    m.name,
    fixed(p.total / 1e9, 1),
    fixed(p.active / 1e9, 1),
    String(m.layers),
    String(m.hidden),
    `${m.heads}/${m.mla ? 'MLA' : m.kvHeads}`,
    experts,
    `${m.weightDtype}/${m.kvDtype}`,
    fixed(kv / 1024, 1),
    fixed(m.maxContext),
  ];
}

/** The catalog as plain data (also the --json output). */
export function catalogJson(c: Catalog): object {
  return {
    gpus: c.gpus.map((g) => ({ ...g.spec, tier: g.kernelTables ? 'measured' : 'roofline' })),
    models: c.models.map((m) => ({
      ...m,
      params: paramCounts(m).total,
      activeParams: paramCounts(m).active,
      kvBytesPerToken: kvBytesPerToken(m),
    })),
  };
}

export function renderCatalog(c: Catalog): string {
  const gpus = renderTable(
    [
      'gpu',
      'name',
      'aliases',
      'nvidia.com/gpu.product',
      'HBM GiB',
      'TB/s',
      'bf16 TF',
      'fp8 TF',
      'fp4 TF',
      'interconnect',
      'tier',
    ],
    c.gpus.map(gpuRow),
    [4, 5, 6, 7, 8],
  );
  const models = renderTable(
    [
      'model',
      'name',
      'params B',
      'active B',
      'layers',
      'hidden',
      'heads/kv',
      'experts',
      'weights/KV',
      'KV KiB/tok',
      'context',
    ],
    c.models.map(modelRow),
    [2, 3, 4, 5, 9, 10],
  );
  return `GPUs\n${gpus}\n\nModels\n${models}\n`;
}

export async function catalogCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const flags = parseFlags(argv, CATALOG_FLAGS);
  if (flags.values.get('help')) {
    out.write(renderHelp(USAGE, CATALOG_FLAGS));
    return 0;
  }
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument '${flags.positionals[0]}'`);
  const gpusFile = flags.values.get('gpus-file') as string | undefined;
  const modelsFile = flags.values.get('models-file') as string | undefined;
  const file = flags.values.get('out') as string | undefined;
  // Checked first: writing over an input (say, the --gpus-file being read) would destroy it.
  if (file) {
    await checkOutputPath(
      '--out',
      file,
      [gpusFile, modelsFile].filter((f): f is string => f !== undefined),
    );
  }
  const catalog = await loadCatalog({ gpusFile, modelsFile });
  if (file) await writeJson(file, catalogJson(catalog));
  if (flags.values.get('json')) out.write(`${JSON.stringify(catalogJson(catalog), null, 2)}\n`);
  else if (!file) out.write(renderCatalog(catalog));
  return 0;
}
