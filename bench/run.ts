// `npm run bench` runs every comparison; `npm run bench -- <name>` runs one. Each prints
//   bench <name>: ours=<n> <unit> reference=<n> <unit> ratio=<r>
// with the reference measured in the same run. A bench that could not measure exits non-zero.
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../infra/paths';
import { curationLossBench } from './curation-loss';
import { curateMemoryBench } from './curate-memory';
import { deadlineBench } from './deadline';
import { interopBench } from './interop';
import { modelHashBench } from './model-hash';
import { nearDupBench } from './near-dup';
import { trainThroughputBench } from './train-throughput';

const BENCHES: Record<string, (work: string) => Promise<void>> = {
  'near-dup': nearDupBench,
  'curate-memory': curateMemoryBench,
  'curation-loss': curationLossBench,
  'train-throughput': trainThroughputBench,
  'train-memory': () => import('./train-memory').then((m) => m.trainMemoryBench()),
  interop: interopBench,
  'model-hash': modelHashBench,
  'commit-latency': (work) => import('./commit-latency').then((m) => m.commitLatencyBench(work)),
  deadline: deadlineBench,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--')); // flags (--seconds N) belong to the benches
  for (const n of names) if (!(n in BENCHES)) throw new Error(`unknown bench '${n}'; known: ${Object.keys(BENCHES).join(', ')}`);
  const work = path.join(projectRoot(), '.minerflow', 'bench');
  mkdirSync(work, { recursive: true });
  for (const name of names.length ? names : Object.keys(BENCHES)) {
    console.log(`# ${name}`);
    await BENCHES[name](work);
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
