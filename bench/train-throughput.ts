// Training tokens/s of our trainer next to PyTorch (2 threads, on OpenBLAS: bench/python/blas_check.py
// refuses the netlib reference BLAS) on the same architecture, batch and optimizer, in the same run,
// at three model sizes, so the scaling shows: the demo's model, and two that real miners train.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CycleInputSchema } from '../subnets/connito/config';
import { backendThreads, initBackend } from '../model/backend';
import { disposeWeights, initWeights, parameterCount, type GptConfig } from '../model/gpt';
import { Rng } from '../model/rng';
import { Trainer } from '../model/trainer';
import { modelConfig } from '../trainers/tfjs';
import { benchLine, note } from './report';
import { torchReference } from './torch';

interface Size {
  model: { nLayer: number; dModel: number; nHead: number; seqLen: number; vocabSize: number };
  batchSize: number;
  steps: number; // measured, after `warmup` steps; fewer for the big models (seconds per step)
  warmup: number;
}

const ROUNDS = 2;

export const THROUGHPUT_SIZES: Record<string, Size> = {
  // The demo's model and batch (common/config.ts defaults).
  '170k': {
    model: { nLayer: 2, dModel: 64, nHead: 4, seqLen: 64, vocabSize: 1024 },
    batchSize: 16,
    steps: 40,
    warmup: 5,
  },
  '3.5m': {
    model: { nLayer: 4, dModel: 256, nHead: 4, seqLen: 128, vocabSize: 1024 },
    batchSize: 16,
    steps: 12,
    warmup: 3,
  },
  '12m': {
    model: { nLayer: 6, dModel: 384, nHead: 6, seqLen: 256, vocabSize: 4096 },
    batchSize: 8,
    steps: 8,
    warmup: 2,
  },
};

export async function trainThroughputBench(work: string, size: string): Promise<void> {
  const s = THROUGHPUT_SIZES[size];
  if (!s)
    throw new Error(`unknown train-throughput size '${size}'; known: ${Object.keys(THROUGHPUT_SIZES).join(', ')}`);
  const backend = await initBackend('auto', () => undefined);
  const cycle = CycleInputSchema.parse({ model: { ...s.model, tokenizer: 'bpe' } });
  const cfg: GptConfig = modelConfig(cycle.model, { vocabSize: s.model.vocabSize });
  const rng = new Rng(1);
  const data = Uint16Array.from({ length: 1 << 20 }, () => rng.int(cfg.vocabSize)); // random ids, as the reference
  const cfgFile = path.join(work, `throughput-config-${size}.json`);
  await fs.writeFile(
    cfgFile,
    JSON.stringify({ ...cfg, batchSize: s.batchSize, steps: s.steps, warmup: s.warmup, threads: 2 }),
  );
  const weights = initWeights(cfg, 0);
  const training = { ...cycle.training, batchSize: s.batchSize, steps: 1000 }; // threads: 'auto', as configs default
  const trainer = new Trainer(cfg, weights, training, data);
  // Ours and the reference take turns, ROUNDS times, and each keeps its best round: on a shared
  // host the load changes by the minute, and turns expose both to the same spells of it.
  let ours = 0;
  let reference = 0;
  try {
    await trainer.run({ untilStep: s.warmup }); // kernels, allocations, worker start
    note(
      `model ${cfg.nLayer}×${cfg.dModel}, seq ${cfg.seqLen}, vocab ${cfg.vocabSize}, batch ${s.batchSize}, ${parameterCount(weights)} parameters; ` +
        `ours on ${backend}, ${trainer.threads} replica(s) × ${backendThreads()} thread(s) per kernel; ${s.steps} steps a round`,
    );
    for (let round = 1; round <= ROUNDS; round++) {
      const t = await trainer.run({ untilStep: s.warmup + round * s.steps });
      const mine = t.tokens / t.seconds;
      const load1 = os.loadavg()[0];
      const ref = torchReference(['throughput', cfgFile]) as {
        tokens_per_sec: number;
        by_threads: Record<string, number>;
        torch: string;
      };
      const perThreads = Object.entries(ref.by_threads)
        .map(([n, v]) => `${v.toFixed(0)} on ${n} thread(s)`)
        .join(', ');
      note(
        `round ${round}: ours ${mine.toFixed(0)} tokens/s (load ${load1.toFixed(2)}), PyTorch ${ref.torch} ${perThreads} tokens/s, best ` +
          `${ref.tokens_per_sec.toFixed(0)} tokens/s (load ${os.loadavg()[0].toFixed(2)})`,
      );
      ours = Math.max(ours, mine);
      reference = Math.max(reference, ref.tokens_per_sec);
    }
  } finally {
    trainer.dispose();
    disposeWeights(weights);
  }
  benchLine(`train-throughput-${size}`, ours, 'tokens/s', reference, 'tokens/s', ours / reference);
}
