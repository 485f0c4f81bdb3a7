// Child process for test/hardening-memory.test.ts: trains one step on the wasm backend in a fresh
// process (the wasm heap only grows, so each measurement needs its own) and prints what it used.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../model/backend';
import { initWeights, type GptConfig } from '../../model/gpt';
import { Trainer } from '../../model/trainer';

void (async () => {
  const { cfg, batchSize, gradAccumSteps, ema } = JSON.parse(process.argv[2]) as {
    cfg: GptConfig;
    batchSize: number;
    gradAccumSteps: number;
    ema: boolean;
  };
  await initBackend('wasm', () => undefined);
  const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
  const heapBefore = heap();
  const data = new Uint16Array(cfg.seqLen * batchSize * gradAccumSteps * 4 + 10).map(
    (_, i) => (i * 7919) % cfg.vocabSize,
  );
  const weights = initWeights(cfg, 1);
  const trainer = new Trainer(
    cfg,
    weights,
    {
      steps: 10,
      batchSize,
      gradAccumSteps,
      learningRate: 1e-3,
      warmupSteps: 1,
      weightDecay: 0.1,
      gradClip: 1,
      beta1: 0.9,
      beta2: 0.95,
      seed: 1,
      threads: 1,
      emaDecay: ema ? 0.99 : 0,
    },
    data,
  );
  // The weights exist before the profile starts; its peakBytes is tf.memory().numBytes at its highest, all included.
  const profile = await tf.profile(() => void trainer.trainStep());
  process.stdout.write(JSON.stringify({ peakBytes: profile.peakBytes, heapGrowth: heap() - heapBefore }) + '\n');
})();
