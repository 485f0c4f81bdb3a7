// Training tokens/s of our trainer next to PyTorch (Debian's python3-torch, 2 threads) on the same
// architecture, batch and optimizer, in the same run.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CycleInputSchema } from '../subnets/connito/config';
import { modelConfig } from '../trainers/tfjs';
import { initBackend } from '../model/backend';
import { disposeWeights, initWeights, parameterCount } from '../model/gpt';
import { Rng } from '../model/rng';
import { BYTE_VOCAB_SIZE } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { benchLine, note } from './report';
import { torchReference } from './torch';

export async function trainThroughputBench(work: string): Promise<void> {
  const backend = await initBackend('auto', () => undefined);
  const cycle = CycleInputSchema.parse({}); // the demo's model and batch
  // The demo's vocabulary (its output layer is a large part of the work), filled with random ids.
  const cfg = modelConfig(cycle.model, {
    vocabSize: cycle.model.tokenizer === 'bytes' ? BYTE_VOCAB_SIZE : cycle.model.vocabSize,
  });
  const steps = 40;
  const rng = new Rng(1);
  const data = Uint16Array.from({ length: 1 << 20 }, () => rng.int(cfg.vocabSize));
  // Ours with the config's replicas (training.threads, 'auto': one per core on wasm), and on one thread for scale.
  const measure = async (threads: number | 'auto') => {
    const weights = initWeights(cfg, 0);
    const trainer = new Trainer(cfg, weights, { ...cycle.training, steps: 1000, threads }, data);
    try {
      await trainer.run({ untilStep: 5 }); // warm-up: kernels, allocations, worker start
      const t = await trainer.run({ untilStep: 5 + steps });
      return { tokensPerSec: t.tokens / t.seconds, threads: trainer.threads, params: parameterCount(weights) };
    } finally {
      trainer.dispose();
      disposeWeights(weights);
    }
  };
  const one = await measure(1);
  const all = await measure(cycle.training.threads);
  const ours = all.tokensPerSec;
  note(
    `model ${cfg.nLayer}×${cfg.dModel}, seq ${cfg.seqLen}, batch ${cycle.training.batchSize}, ${all.params} parameters; ours on ${backend}`,
  );
  note(
    `ours: ${all.tokensPerSec.toFixed(0)} tokens/s on ${all.threads} thread(s), ${one.tokensPerSec.toFixed(0)} on 1 (×${(all.tokensPerSec / one.tokensPerSec).toFixed(2)})`,
  );
  const cfgFile = path.join(work, 'throughput-config.json');
  await fs.writeFile(cfgFile, JSON.stringify({ ...cfg, batchSize: cycle.training.batchSize, steps, threads: 2 }));
  const ref = torchReference(['throughput', cfgFile]) as { tokens_per_sec: number; threads: number; torch: string };
  note(`reference: PyTorch ${ref.torch}, ${ref.threads} threads`);
  benchLine('train-throughput', ours, 'tokens/s', ref.tokens_per_sec, 'tokens/s', ours / ref.tokens_per_sec);
}
