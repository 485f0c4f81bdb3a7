// Trains a small GPT a few steps on the backend MINERFLOW_BACKEND names and prints, as JSON, each
// step's loss and gradient norm and the final weights: test/backend-agreement.test.ts runs it once
// per backend (one backend per process, as the worker has) and compares.
import { initBackend } from '../../model/backend';
import { disposeWeights, initWeights, type GptConfig } from '../../model/gpt';
import { encodeDocuments } from '../../model/tokenizer';
import { Trainer } from '../../model/trainer';

async function main(): Promise<void> {
  const backend = await initBackend('auto', () => undefined);
  const cfg: GptConfig = { vocabSize: 256, seqLen: 32, dModel: 32, nLayer: 2, nHead: 4 };
  const data = encodeDocuments(
    Array.from(
      { length: 80 },
      (_, i) => `backend agreement document ${i}: the quick brown fox jumps over ${i * 7} lazy dogs.`,
    ),
  );
  const weights = initWeights(cfg, 0);
  const trainer = new Trainer(
    cfg,
    weights,
    {
      steps: 20,
      batchSize: 8,
      learningRate: 3e-3,
      warmupSteps: 0,
      weightDecay: 0.1,
      gradClip: 1,
      beta1: 0.9,
      beta2: 0.95,
      seed: 1,
      threads: 1,
    },
    data,
  );
  const run = await trainer.run({ untilStep: Number(process.argv[2] ?? 5) });
  const out = {
    backend,
    losses: run.history.map((h) => h.loss),
    gradNorms: run.history.map((h) => h.gradNorm),
    weights: Object.fromEntries([...weights].map(([name, w]) => [name, Array.from(w.dataSync())])),
  };
  trainer.dispose();
  disposeWeights(weights);
  process.stdout.write(JSON.stringify(out));
}

void main();
