// `npm run bench` runs every comparison; `npm run bench -- <name>` runs one. Each prints
//   bench <name>: ours=<n> <unit> reference=<n> <unit> ratio=<r>
// with the reference measured in the same run. A bench that could not measure exits non-zero.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { logger } from '../infra/log';
import { projectRoot } from '../infra/paths';
import { curationLossBench } from './curation-loss';
import { curateMemoryBench } from './curate-memory';
import { deadlineBench } from './deadline';
import { hubTransferBench } from './hub-transfer';
import { interopBench } from './interop';
import { modelHashBench } from './model-hash';
import { nearDupBench } from './near-dup';
import { THROUGHPUT_SIZES, trainThroughputBench } from './train-throughput';

const BENCHES: Record<string, (work: string) => Promise<void>> = {
  'near-dup': nearDupBench,
  'curate-memory': curateMemoryBench,
  'curation-loss': curationLossBench,
  ...Object.fromEntries(
    Object.keys(THROUGHPUT_SIZES).map((size) => [
      `train-throughput-${size}`,
      (work: string) => trainThroughputBench(work, size),
    ]),
  ),
  // In a fresh process with a callable GC: RSS left over from earlier benches, or garbage not yet
  // collected, would otherwise read as growth.
  'train-memory': async () => {
    if (typeof global.gc === 'function' && process.argv.includes('train-memory'))
      return import('./train-memory').then((m) => m.trainMemoryBench());
    execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', __filename, 'train-memory'], {
      stdio: 'inherit',
    });
  },
  interop: interopBench,
  'model-hash': modelHashBench,
  'commit-latency': (work) => import('./commit-latency').then((m) => m.commitLatencyBench(work)),
  deadline: deadlineBench,
  'hub-transfer': hubTransferBench,
  'deadline-torch': (work) => import('./deadline-torch').then((m) => m.deadlineTorchBench(work)),
  'recipe-torch': (work) => import('./recipe-torch').then((m) => m.recipeTorchBench(work)),
  finetune: (work) => import('./finetune').then((m) => m.finetuneBench(work)),
};

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--')); // flags (--seconds N) belong to the benches
  for (const n of names)
    if (!(n in BENCHES)) throw new Error(`unknown bench '${n}'; known: ${Object.keys(BENCHES).join(', ')}`);
  const work = path.join(projectRoot(), '.minerflow', 'bench');
  mkdirSync(work, { recursive: true });
  // Every bench runs even if one fails, so one broken comparison does not hide the others' figures.
  const failed: string[] = [];
  for (const name of names.length ? names : Object.keys(BENCHES)) {
    console.log(`# ${name}`);
    try {
      await BENCHES[name](work);
    } catch (err) {
      logger.error({ bench: name, err }, `bench failed: ${name}: ${err instanceof Error ? err.message : String(err)}`);
      failed.push(name);
    }
  }
  if (failed.length) throw new Error(`${failed.length} bench(es) failed: ${failed.join(', ')}`);
}

main().catch((err: unknown) => {
  logger.error({ err }, `bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
