import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../model/backend';
import {
  EMA_FILE,
  loadInto,
  loadOptimizerMoments,
  loadWeights,
  OPTIMIZER_FILE,
  saveTrainingState,
  saveWeights,
  STATE_FILE,
  WEIGHTS_FILE,
  type TrainingStateMeta,
} from '../model/checkpoint';
import { evaluate } from '../model/evaluate';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { embed, matmul } from '../model/ops';
import { cosineWithWarmup } from '../model/optimizer';
import { encodeDocuments, decode } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { lrRangeTest } from '../model/lr-finder';
import { tempDir } from './helpers/settings';

before(async () => {
  await initBackend('wasm', () => undefined);
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('embed: custom gradient equals the gradient of the dense one-hot product', () => {
  const table = tf.randomNormal([7, 3], 0, 1, 'float32', 1) as tf.Tensor2D;
  const ids = tf.tensor1d([0, 3, 3, 6, 1], 'int32');
  const w = tf.randomNormal([5, 3], 0, 1, 'float32', 2);
  const ours = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(embed(t as tf.Tensor2D, ids), w)))(table);
  const dense = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.matMul(tf.cast(tf.oneHot(ids, 7), 'float32'), t), w)))(
    table,
  );
  assert.ok(maxAbsDiff(ours, dense) < 1e-5, 'maxAbsDiff(ours, dense) < 1e-5');
  assert.ok(
    maxAbsDiff(embed(table, ids), tf.gather(table, ids)) === 0,
    'maxAbsDiff(embed(table, ids), tf.gather(table, ids)) === 0',
  );
});

test('matmul: custom gradients equal tf.matMul autodiff, rank 2 and batched', () => {
  for (const [sa, sb] of [
    [
      [4, 5],
      [5, 3],
    ],
    [
      [2, 4, 5],
      [2, 5, 3],
    ],
  ]) {
    const a = tf.randomNormal(sa, 0, 1, 'float32', 3);
    const b = tf.randomNormal(sb, 0, 1, 'float32', 4);
    const f = (mm: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor) =>
      tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(mm(x, y))))([a, b]);
    const [oa, ob] = f((x, y) => matmul(x, y));
    const [ra, rb] = f((x, y) => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D));
    assert.ok(
      maxAbsDiff(oa, ra) < 1e-4 && maxAbsDiff(ob, rb) < 1e-4,
      'maxAbsDiff(oa, ra) < 1e-4 && maxAbsDiff(ob, rb) < 1e-4',
    );
  }
});

test('cosine schedule with warmup matches get_cosine_schedule_with_warmup', () => {
  assert.equal(cosineWithWarmup(0, 1, 10, 110), 0);
  assert.equal(cosineWithWarmup(5, 1, 10, 110), 0.5);
  assert.equal(cosineWithWarmup(10, 1, 10, 110), 1);
  assert.ok(
    Math.abs(cosineWithWarmup(60, 1, 10, 110) - 0.5) < 1e-12,
    'Math.abs(cosineWithWarmup(60, 1, 10, 110) - 0.5) < 1e-12',
  );
  assert.equal(cosineWithWarmup(110, 1, 10, 110), 0);
});

test('byte tokenizer round-trips any UTF-8', () => {
  const docs = ['héllo wörld', '日本語 ✓', 'emoji 🚀'];
  assert.equal(decode(encodeDocuments(docs)), docs.map((d) => d + '\n\n').join(''));
});

test('training lowers held-out loss, does not leak tensors, and a saved checkpoint evaluates identically', async () => {
  const cfg: GptConfig = { vocabSize: 256, seqLen: 32, dModel: 32, nLayer: 1, nHead: 2 };
  const text = Array.from({ length: 400 }, (_, i) => `the cat sat on the mat number ${i % 7}. the dog ate the bone.`);
  const train = encodeDocuments(text.slice(0, 350));
  const heldOut = encodeDocuments(text.slice(350));
  const weights = initWeights(cfg, 0);
  const evalOpts = { maxTokens: 2048, batchSize: 8 };
  const before = evaluate(weights, cfg, heldOut, evalOpts).loss;
  const trainer = new Trainer(
    cfg,
    weights,
    {
      steps: 80,
      batchSize: 8,
      learningRate: 1e-2,
      warmupSteps: 5,
      weightDecay: 0.1,
      gradClip: 1,
      beta1: 0.9,
      beta2: 0.95,
      seed: 1,
    },
    train,
  );
  await trainer.run(); // warm-up step allocates the optimizer's state
  const tensorsAfterRun = tf.memory().numTensors;
  trainer.trainStep();
  assert.equal(tf.memory().numTensors, tensorsAfterRun, 'a training step must not leak tensors');
  const after = evaluate(weights, cfg, heldOut, evalOpts).loss;
  assert.ok(after < before - 1.5, `held-out loss ${after} should beat the untrained ${before} by a clear margin`);
  assert.equal(evaluate(weights, cfg, heldOut, evalOpts).loss, after, 'evaluation is deterministic');

  const file = path.join(tempDir(), 'model.safetensors');
  await saveWeights(file, weights);
  const loaded = await loadWeights(file, cfg);
  assert.equal(evaluate(loaded, cfg, heldOut, evalOpts).loss, after);
  trainer.dispose();
  disposeWeights(weights);
  disposeWeights(loaded);
});

test('a checkpoint whose shapes do not match the config is refused by name', async () => {
  const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const file = path.join(tempDir(), 'model.safetensors');
  const w = initWeights(cfg, 0);
  await saveWeights(file, w);
  disposeWeights(w);
  // A named error class, so the train activity fails at once instead of retrying a checkpoint that can never fit.
  await assert.rejects(loadWeights(file, { ...cfg, seqLen: 32 }), {
    name: 'CheckpointShapeError',
    message: /'wpe' has shape \[16,16\] but the config needs \[32,16\]/,
  });
  await assert.rejects(loadWeights(file, { ...cfg, nLayer: 2 }), /missing tensor 'h\.1\./);
});

test('exact resume: N steps, save, load, N more equals 2N straight — the schedule does not restart', async () => {
  const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const data = encodeDocuments(
    Array.from({ length: 100 }, (_, i) => `resume test document ${i}: the quick brown fox.`),
  );
  const train = {
    steps: 40,
    batchSize: 4,
    learningRate: 1e-2,
    warmupSteps: 10,
    weightDecay: 0.1,
    gradClip: 1,
    beta1: 0.9,
    beta2: 0.95,
    seed: 3,
  };

  const straight = initWeights(cfg, 5);
  const t1 = new Trainer(cfg, straight, train, data);
  await t1.run();

  const first = initWeights(cfg, 5);
  const t2 = new Trainer(cfg, first, train, data);
  const half = await t2.run({ untilStep: 20 });
  assert.equal(half.steps, 20);
  const dir = tempDir();
  await saveTrainingState(dir, first, t2.optimizer, {
    counters: t2.counters(),
    trainLoss: half.finalLoss,
    backend: 'wasm',
  });
  t2.dispose();
  disposeWeights(first);

  const counters = (JSON.parse(await fs.readFile(path.join(dir, STATE_FILE), 'utf8')) as TrainingStateMeta).counters;
  const resumed = await loadWeights(path.join(dir, WEIGHTS_FILE), cfg);
  const t3 = new Trainer(cfg, resumed, train, data, counters);
  await loadOptimizerMoments(path.join(dir, OPTIMIZER_FILE), t3.optimizer);
  const rest = await t3.run();
  assert.equal(rest.history[0].step, 21, 'continues at step 21');
  assert.ok(rest.history[0].lr < train.learningRate, 'LR continues down the cosine; warmup is not redone');

  for (const [name, w] of straight)
    assert.ok(maxAbsDiff(w, resumed.get(name)!) < 1e-6, `weight ${name} differs after resume`);
  t1.dispose();
  t3.dispose();
  disposeWeights(straight);
  disposeWeights(resumed);
});

test('a planted NaN batch is skipped and counted, and training goes on', async () => {
  const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const weights = initWeights(cfg, 1);
  const trainer = new Trainer(
    cfg,
    weights,
    {
      steps: 6,
      batchSize: 2,
      learningRate: 1e-3,
      warmupSteps: 0,
      weightDecay: 0,
      gradClip: 1,
      beta1: 0.9,
      beta2: 0.95,
      seed: 1,
    },
    encodeDocuments(['some text to learn from, long enough for a window or two.']),
  );
  const wte = weights.get('wte')!;
  const saved = wte.clone();
  trainer.trainStep();
  // Plant: a NaN in the embedding makes the next batch's loss NaN; the step must be skipped.
  wte.assign(tf.fill(wte.shape as [number, number], NaN));
  const r = trainer.trainStep();
  assert.ok(!Number.isFinite(r.loss), '!Number.isFinite(r.loss)');
  assert.equal(r.skipped, 1);
  wte.assign(saved);
  const ok = trainer.trainStep();
  assert.ok(Number.isFinite(ok.loss), 'Number.isFinite(ok.loss)');
  assert.equal(ok.skipped, 1);
  trainer.dispose();
  disposeWeights(weights);
});

test('the LR range test suggests an LR within 3× of the best of a short grid search', async () => {
  const cfg: GptConfig = { vocabSize: 256, seqLen: 32, dModel: 32, nLayer: 1, nHead: 2 };
  const texts = (await import('../curation/brown')).exportBrown(tempDir(), 'a');
  const dir = await texts;
  const docs = (await fs.readdir(dir)).filter((f) => f.endsWith('.txt'));
  const all = await Promise.all(docs.map((f) => fs.readFile(path.join(dir, f), 'utf8')));
  const train = encodeDocuments(all.slice(0, 40));
  const heldOut = encodeDocuments(all.slice(40));
  const found = await lrRangeTest(cfg, train, {
    minLr: 1e-5,
    maxLr: 1,
    steps: 150,
    batchSize: 8,
    seed: 1,
    modelSeed: 0,
    weightDecay: 0.1,
    gradClip: 1,
    beta1: 0.9,
    beta2: 0.95,
  });
  assert.ok(found.curve.length >= 100, 'found.curve.length >= 100');
  let best = { lr: 0, loss: Infinity };
  for (const lr of [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]) {
    const w = initWeights(cfg, 0);
    const t = new Trainer(
      cfg,
      w,
      {
        steps: 100,
        batchSize: 8,
        learningRate: lr,
        warmupSteps: 10,
        weightDecay: 0.1,
        gradClip: 1,
        beta1: 0.9,
        beta2: 0.95,
        seed: 1,
      },
      train,
    );
    await t.run();
    const loss = evaluate(w, cfg, heldOut, { maxTokens: 4096, batchSize: 16 }).loss;
    if (loss < best.loss) best = { lr, loss };
    t.dispose();
    disposeWeights(w);
  }
  const factor = Math.max(found.suggestedLr / best.lr, best.lr / found.suggestedLr);
  assert.ok(
    factor <= 3,
    `suggested ${found.suggestedLr.toExponential(2)}, grid best ${best.lr} (factor ${factor.toFixed(2)})`,
  );
});

test('the EMA of the weights resumes exactly too', async () => {
  const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
  const data = encodeDocuments(Array.from({ length: 60 }, (_, i) => `ema test document ${i}: a lazy dog sleeps.`));
  const train = {
    steps: 20,
    batchSize: 4,
    learningRate: 1e-2,
    warmupSteps: 2,
    weightDecay: 0.1,
    gradClip: 1,
    beta1: 0.9,
    beta2: 0.95,
    seed: 3,
    emaDecay: 0.99,
  };
  const straight = initWeights(cfg, 5);
  const t1 = new Trainer(cfg, straight, train, data);
  await t1.run();
  const w = initWeights(cfg, 5);
  const t2 = new Trainer(cfg, w, train, data);
  await t2.run({ untilStep: 10 });
  const dir = tempDir();
  await saveTrainingState(
    dir,
    w,
    t2.optimizer,
    { counters: t2.counters(), trainLoss: 0, backend: 'wasm' },
    t2.ema!.shadow,
  );
  const t3 = new Trainer(cfg, w, train, data, t2.counters());
  await loadOptimizerMoments(path.join(dir, OPTIMIZER_FILE), t3.optimizer);
  await loadInto(path.join(dir, EMA_FILE), t3.ema!.shadow);
  t2.dispose();
  await t3.run();
  for (const [name, s] of t1.ema!.shadow)
    assert.ok(maxAbsDiff(s, t3.ema!.shadow.get(name)!) < 1e-6, `EMA ${name} differs after resume`);
  assert.ok(maxAbsDiff(t1.ema!.shadow.get('wte')!, straight.get('wte')!) > 0, 'the EMA is not the raw weights');
  t1.dispose();
  t3.dispose();
  disposeWeights(straight);
  disposeWeights(w);
});
