// Where deadline-torch's ratio comes from: the same PyTorch miner for the same number of steps
// (no clock, no cycle), on deadline-torch's corpus, with one part of minerflow's recipe switched
// on at a time, each scored by evaluate.py on the same clean in-domain text. At equal steps
// nothing is lost to process starts or the LR range test, so curation × EMA is what deadline-torch
// can show on this corpus at that many steps (the domain line is a part of curation's).
//   bench recipe-torch-curation: curated (domain filter on) vs the raw corpus, raw weights
//   bench recipe-torch-domain:   curated with the domain filter vs curated without it
//   bench recipe-torch-ema:      the better of raw and averaged weights vs raw, curated
//   npm run bench -- recipe-torch [--steps 1000]
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CurateSchema } from '../common/config';
import { curate } from '../curation/curate';
import { runSupervised } from '../trainers/command/process';
import { EMA_DIR } from '../trainers/command/states';
import { buildCorpus, heldOutLoss, MINER, plainMinerConfig, PYTHON, TRAINING } from './deadline-torch';
import { benchLine, note } from './report';
import { torchPython } from './torch';

const EMA_DECAY = 0.98; // deadline-torch's

export async function recipeTorchBench(work: string): Promise<void> {
  const steps = stepsFlag(1000);
  torchPython(); // PYTHON: the venv, created on a fresh clone
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-recipe-torch-'));
  const data = await buildCorpus(work, root);
  const curated = async (domain: boolean) => {
    const opts = {
      ...CurateSchema.parse({ heldOutFraction: 0.05 }),
      format: 'auto' as const,
      textField: 'text',
      domain: { reference: domain ? data.referenceDir : null, quantile: 0.05 },
    };
    const ds = await curate(data.corpusDir, path.join(root, 'datasets'), opts);
    note(`curated${domain ? '' : ' without the domain filter'}: ${ds.report.train.documents} train documents`);
    return path.join(ds.dir, 'train.jsonl');
  };
  const runs = {
    raw: await train(root, 'raw', data.rawJsonl, steps),
    curated: await train(root, 'curated', await curated(true), steps),
    noDomain: await train(root, 'no-domain', await curated(false), steps),
  };
  const loss = async (dir: string) => {
    const l = await heldOutLoss(root, dir, data.evalJsonl);
    if (!Number.isFinite(l)) throw new Error(`${dir}: held-out loss ${l}; no ratio from a broken run`);
    return l;
  };
  const raw = await loss(runs.raw);
  const curatedRaw = await loss(runs.curated);
  const curatedEma = await loss(path.join(runs.curated, EMA_DIR));
  const noDomain = await loss(runs.noDomain);
  note(`${steps} steps each at LR ${TRAINING.learningRate}, batch ${TRAINING.batchSize}; EMA decay ${EMA_DECAY}`);
  benchLine('recipe-torch-curation', curatedRaw, 'nats', raw, 'nats', raw / curatedRaw);
  benchLine('recipe-torch-domain', curatedRaw, 'nats', noDomain, 'nats', noDomain / curatedRaw);
  const best = Math.min(curatedRaw, curatedEma);
  benchLine('recipe-torch-ema', best, 'nats', curatedRaw, 'nats', curatedRaw / best);
  note(
    `curation × EMA: ${(raw / best).toFixed(3)} at equal steps (deadline-torch's ratio also pays for its time outside the trainer)`,
  );
}

function stepsFlag(fallback: number): number {
  const i = process.argv.indexOf('--steps');
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!(Number.isInteger(n) && n >= 100))
    throw new Error(`--steps ${process.argv[i + 1]}: expected a whole number ≥ 100`);
  return n;
}

/** The miner for `steps` steps on `trainFile`, keeping averaged weights beside the raw ones; returns its checkpoint. */
async function train(root: string, name: string, trainFile: string, steps: number): Promise<string> {
  const checkpoints = path.join(root, name, 'checkpoints');
  await fs.mkdir(checkpoints, { recursive: true });
  const config = path.join(root, name, 'config.yaml');
  await fs.writeFile(
    config,
    plainMinerConfig(trainFile, checkpoints, { checkpointInterval: steps, emaDecay: EMA_DECAY, maxSteps: steps }),
  );
  const t0 = performance.now();
  const tail: string[] = []; // its last lines, for the error if it fails
  const proc = runSupervised({
    argv: [PYTHON, path.join(MINER, 'train.py'), '--path', config],
    env: { OMP_NUM_THREADS: '1' },
    onLine: (line) => void (tail.push(line) > 20 && tail.shift()),
  });
  const exit = await proc.exited;
  if (exit.code !== 0) throw new Error(`${name}: the miner exited with code ${exit.code}:\n${tail.join('\n')}`);
  const dir = path.join(checkpoints, `globalver_0_inneropt_${steps}`);
  await fs.access(path.join(dir, EMA_DIR));
  note(`${name}: ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return dir;
}
