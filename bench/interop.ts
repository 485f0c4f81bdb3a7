// Interop check: a checkpoint of ours, loaded with Python safetensors into the PyTorch
// re-implementation of the same model, must give our held-out loss within 1e-3.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../model/backend';
import { saveWeights, writeManifest } from '../model/checkpoint';
import { evaluate } from '../model/evaluate';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { encodeDocuments } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { brownDocs } from './corpora';
import { benchLine, note } from './report';
import { torchReference } from './torch';

export async function interopBench(work: string): Promise<void> {
  await initBackend('auto', () => undefined);
  const docs = (await brownDocs(path.join(work, 'corpora'), 'a')).map((d) => d.text);
  const cfg: GptConfig = { vocabSize: 256, seqLen: 64, dModel: 64, nLayer: 2, nHead: 4 };
  const weights = initWeights(cfg, 0);
  const trainer = new Trainer(
    cfg,
    weights,
    {
      steps: 60,
      batchSize: 8,
      learningRate: 3e-3,
      warmupSteps: 5,
      weightDecay: 0.1,
      gradClip: 1,
      beta1: 0.9,
      beta2: 0.95,
      seed: 1,
    },
    encodeDocuments(docs.slice(0, 35)),
  );
  await trainer.run();
  const dir = path.join(work, `interop-${Date.now()}`);
  await fs.mkdir(dir, { recursive: true });
  const hash = await saveWeights(path.join(dir, 'model.safetensors'), weights);
  await writeManifest(dir, {
    format: 'minerflow-checkpoint',
    version: 1,
    modelHash: hash,
    model: { ...cfg, seed: 0 },
    tokenizer: 'bytes',
    step: 60,
    trainLoss: 0,
    backend: 'bench',
    runId: 'interop',
    round: 0,
  });
  const heldOutFile = path.join(dir, 'heldout.jsonl');
  await fs.writeFile(
    heldOutFile,
    docs
      .slice(35)
      .map((text) => JSON.stringify({ text }))
      .join('\n') + '\n',
  );
  const opts = { maxTokens: 16_384, batchSize: 16 };
  const ours = evaluate(weights, cfg, encodeDocuments(docs.slice(35)), opts).loss;
  trainer.dispose();
  disposeWeights(weights);
  const ref = torchReference(['interop', dir, heldOutFile, String(opts.maxTokens), String(opts.batchSize)]) as {
    loss: number;
  };
  note(
    `held-out loss of one checkpoint: ours (tfjs) ${ours.toFixed(6)}, PyTorch from the same safetensors ${ref.loss.toFixed(6)}`,
  );
  benchLine('interop-loss', ours, 'nats', ref.loss, 'nats', ref.loss / ours);
  if (!(Math.abs(ours - ref.loss) < 1e-3))
    throw new Error(`PyTorch reproduces our held-out loss only to ${Math.abs(ours - ref.loss)} (goal < 1e-3)`);
}
