// `npm run bench -- finetune [--seconds N]`: fine-tuning methods at equal wall time. A small GPT is
// pre-trained on the Brown corpus's train documents for a while (the base), then each method
// fine-tunes it on the instruct recipe (finetune/recipes.ts: a sentence → the next one) for the
// same N seconds, from the same base; the table shows held-out masked loss (response tokens only),
// trainable parameters, training state memory and speed. LoRA rank 8 is the reference (the common
// default). Then DPO (LoRA rank 16) on the preference recipe (chosen = the true next sentence,
// rejected = its words shuffled): preference accuracy on held-out pairs before and after.
import * as tf from '@tensorflow/tfjs-core';
import * as path from 'node:path';
import { FinetuneSchema } from '../finetune/config';
import { instructExamples, preferenceExamples, splitDocs } from '../finetune/recipes';
import { encodeExamples, FinetuneRun, type Encoded } from '../finetune/run';
import { initBackend } from '../model/backend';
import { disposeWeights, initWeights, type GptConfig, type Weights } from '../model/gpt';
import { ByteTokenizer } from '../model/tokenizer';
import { Trainer, type TrainConfig } from '../model/trainer';
import { brownDocs } from './corpora';

const cfg: GptConfig = { vocabSize: 256, seqLen: 128, dModel: 64, nLayer: 4, nHead: 4 };
const tokenizer = new ByteTokenizer();

const schedule = (steps: number, learningRate: number): TrainConfig => ({
  steps,
  batchSize: 16,
  learningRate,
  warmupSteps: Math.min(10, Math.floor(steps / 10)),
  weightDecay: 0.0,
  gradClip: 1,
  beta1: 0.9,
  beta2: 0.95,
  seed: 1,
  threads: 1,
});

function copyOf(w: Weights): Weights {
  return new Map([...w].map(([n, v]) => [n, tf.variable(v.clone(), true)]));
}

/** Trains `run` for `seconds`: a few timed steps (after a warm-up one) size the cosine schedule to the time budget. */
async function trainFor(run: FinetuneRun, data: Encoded, seconds: number, lr: number) {
  const probe = new Trainer(cfg, run.model.trainable, schedule(1000, 0), run.objective(data));
  await probe.run({ untilStep: 1 }); // at LR 0: times steps without moving the weights
  const t0 = performance.now();
  await probe.run({ untilStep: 4 });
  const stepSeconds = (performance.now() - t0) / 3000;
  probe.dispose();
  const steps = Math.max(5, Math.floor(seconds / stepSeconds));
  const trainer = new Trainer(cfg, run.model.trainable, schedule(steps, lr), run.objective(data));
  const summary = await trainer.run({ stopAt: Date.now() + seconds * 1000 });
  trainer.dispose();
  return { steps: summary.steps, seconds: summary.seconds, tokensPerSec: summary.tokens / summary.seconds };
}

export async function finetuneBench(work: string): Promise<void> {
  const at = process.argv.indexOf('--seconds');
  const seconds = at > 0 ? Number(process.argv[at + 1]) : 40;
  const backend = await initBackend('auto', () => undefined);
  const docs = splitDocs((await brownDocs(path.join(work, 'brown'))).map((d) => d.text));

  // The base: pre-trained on the train documents' text (never the held-out ones the evaluation uses).
  const base = initWeights(cfg, 0);
  const text = tokenizer.encodeDocuments(docs.train);
  const pre = new Trainer(cfg, base, { ...schedule(100_000, 3e-3), steps: Math.round(seconds * 6) }, text);
  const preRun = await pre.run({ stopAt: Date.now() + seconds * 1.5 * 1000 });
  pre.dispose();
  console.log(
    `base: ${cfg.nLayer} layers × d${cfg.dModel}, bytes, pre-trained ${preRun.steps} steps on Brown (${backend}), train loss ${preRun.finalLoss.toFixed(3)}`,
  );

  const sftTrain = encodeExamples('sft', instructExamples(docs.train), tokenizer, cfg.seqLen).encoded;
  const sftHeld = encodeExamples('sft', instructExamples(docs.heldOut, { perDoc: 2 }), tokenizer, cfg.seqLen).encoded;
  console.log(
    `instruct task: ${sftTrain.examples.length} train, ${sftHeld.examples.length} held-out examples; ${seconds} s each`,
  );
  const methods: [string, unknown, number][] = [
    ['LoRA r8', { kind: 'lora', attention: { rank: 8, alpha: 16 }, mlp: { rank: 8, alpha: 16 } }, 3e-3],
    ['LoRA r64', { kind: 'lora', attention: { rank: 64, alpha: 128 }, mlp: { rank: 64, alpha: 128 } }, 3e-3],
    [
      'LoRA rising 4→64',
      {
        kind: 'lora',
        attention: { rank: { first: 4, last: 64 }, alpha: 32 },
        mlp: { rank: { first: 4, last: 64 }, alpha: 32 },
      },
      3e-3,
    ],
    ['last 2 layers', { kind: 'lastLayers', layers: 2 }, 3e-3],
    ['full', { kind: 'full' }, 3e-3],
  ];
  const rows: { name: string; loss: number }[] = [];
  // tok/s counts seqLen per example (batches are padded to their longest example, so fewer are computed).
  console.log('method             trainable   state MB  steps  seconds   tok/s   held-out loss (base → tuned)');
  for (const [name, method, lr] of methods) {
    const weights = copyOf(base);
    const run = new FinetuneRun(cfg, weights, FinetuneSchema.parse({ objective: 'sft', method }));
    const before = run.evaluate(sftHeld, 32).loss;
    const r = await trainFor(run, sftTrain, seconds, lr);
    const after = run.evaluate(sftHeld, 32).loss;
    const mem = run.memory(false);
    console.log(
      `${name.padEnd(18)} ${String(mem.trainableParameters).padStart(9)} ${(mem.stateBytes / 2 ** 20).toFixed(1).padStart(9)} ${String(r.steps).padStart(6)} ${r.seconds.toFixed(1).padStart(8)} ${Math.round(r.tokensPerSec).toString().padStart(7)}   ${before.toFixed(4)} → ${after.toFixed(4)}`,
    );
    rows.push({ name, loss: after });
    run.dispose();
    disposeWeights(weights);
  }
  const reference = rows[0].loss;
  const best = rows.reduce((a, b) => (b.loss < a.loss ? b : a));
  console.log(`best: ${best.name}`);
  console.log(
    `bench finetune-loss: ours=${best.loss.toFixed(4)} reference=${reference.toFixed(4)} ratio=${(reference / best.loss).toFixed(3)}`,
  );

  // Preference task: DPO with LoRA rank 16 against the frozen base.
  const prefTrain = encodeExamples('preference', preferenceExamples(docs.train), tokenizer, cfg.seqLen).encoded;
  const prefHeld = encodeExamples(
    'preference',
    preferenceExamples(docs.heldOut, { perDoc: 2 }),
    tokenizer,
    cfg.seqLen,
  ).encoded;
  const weights = copyOf(base);
  const run = new FinetuneRun(cfg, weights, FinetuneSchema.parse({ objective: 'dpo' }));
  const before = run.evaluate(prefHeld, 32);
  const r = await trainFor(run, prefTrain, seconds, 3e-3);
  const after = run.evaluate(prefHeld, 32);
  console.log(
    `preference task: ${prefTrain.examples.length} train, ${prefHeld.examples.length} held-out pairs; DPO β 0.1, LoRA r16, ${r.steps} steps in ${seconds} s`,
  );
  console.log(
    `  chosen more likely than rejected: ${before.chosenLikelier!.toFixed(3)} (base) → ${after.chosenLikelier!.toFixed(3)} (after DPO)`,
  );
  console.log(
    `  held-out DPO loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}, preference accuracy (implicit reward) ${after.preferenceAccuracy!.toFixed(3)}, reward margin ${after.rewardMargin!.toFixed(3)}`,
  );
  console.log(
    `bench finetune-dpo: ours=${after.chosenLikelier!.toFixed(3)} reference=${before.chosenLikelier!.toFixed(3)} ratio=${(after.chosenLikelier! / before.chosenLikelier!).toFixed(3)}`,
  );
  run.dispose();
  disposeWeights(weights);
  disposeWeights(base);
}
