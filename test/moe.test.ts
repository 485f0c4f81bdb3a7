import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { exportBrown } from '../curation/brown';
import { initBackend } from '../model/backend';
import { loadWeights, saveWeights } from '../model/checkpoint';
import { evaluate, windowsToTensors } from '../model/evaluate';
import {
  disposeWeights,
  forward,
  forwardWithAux,
  initWeights,
  trainingLoss,
  weightShapes,
  type GptConfig,
  type MoeConfig,
  type Weights,
} from '../model/gpt';
import { expertCapacity, route } from '../model/moe';
import { encodeDocuments, type TokenIds } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { ModelSchema, parseOrExplain } from '../common/config';
import { tempDir } from './helpers/settings';

before(async () => {
  await initBackend('wasm', () => undefined);
});

const moe = (over: Partial<MoeConfig> = {}): MoeConfig => ({
  experts: 4,
  topK: 2,
  capacityFactor: 1.25,
  auxLossWeight: 0.01,
  every: 1,
  ...over,
});
const tiny = (over: Partial<MoeConfig> = {}): GptConfig => ({
  vocabSize: 256,
  seqLen: 16,
  dModel: 16,
  nLayer: 2,
  nHead: 2,
  moe: moe(over),
});
const toy = encodeDocuments(
  Array.from({ length: 200 }, (_, i) => `the cat sat on the mat number ${i % 7}. the dog ate the bone.`),
);
const train = {
  steps: 50,
  batchSize: 8,
  learningRate: 3e-3,
  warmupSteps: 0,
  weightDecay: 0.1,
  gradClip: 1,
  beta1: 0.9,
  beta2: 0.95,
  seed: 1,
};
const rows = (t: tf.Tensor) => t.arraySync() as number[][];

test('MoE weights: a router and E expert MLPs replace the MLP on every `every`-th block, and a checkpoint round-trips', async () => {
  const cfg = tiny({ every: 2 });
  const shapes = weightShapes(cfg);
  assert.ok(shapes.has('h.0.mlp.c_fc.weight'), 'block 0 stays dense with every = 2');
  assert.ok(!shapes.has('h.0.moe.router.weight'), "!shapes.has('h.0.moe.router.weight')");
  assert.deepEqual(shapes.get('h.1.moe.router.weight'), [16, 4]);
  assert.deepEqual(shapes.get('h.1.moe.experts.3.c_fc.weight'), [16, 64]);
  assert.deepEqual(shapes.get('h.1.moe.experts.3.c_proj.bias'), [16]);
  assert.ok(!shapes.has('h.1.mlp.c_fc.weight'), "!shapes.has('h.1.mlp.c_fc.weight')");

  const w = initWeights(cfg, 0);
  const file = path.join(tempDir(), 'model.safetensors');
  await saveWeights(file, w);
  const loaded = await loadWeights(file, cfg);
  const { ids } = windowsToTensors(toy, [0, 50], 16);
  assert.deepEqual(forward(loaded, cfg, ids).dataSync(), forward(w, cfg, ids).dataSync());
  await assert.rejects(
    loadWeights(file, { ...cfg, moe: moe({ every: 2, experts: 5 }) }),
    /missing tensor 'h\.1\.moe\.experts\.4\./,
  );
  await assert.rejects(loadWeights(file, { ...cfg, moe: null }), /missing tensor 'h\.1\.mlp\./);
  disposeWeights(w);
  disposeWeights(loaded);
});

test('bad MoE config is refused with the field and value named', () => {
  assert.throws(
    () => initWeights(tiny({ topK: 5 }), 0),
    /model\.moe\.topK \(5\) must be at most model\.moe\.experts \(4\)/,
  );
  assert.throws(
    () => initWeights(tiny({ every: 3 }), 0),
    /model\.moe\.every \(3\) must be at most model\.nLayer \(2\)/,
  );
  assert.throws(() => initWeights(tiny({ capacityFactor: 0 }), 0), /model\.moe\.capacityFactor \(0\)/);
  assert.throws(
    () => parseOrExplain(ModelSchema, { moe: { experts: 2, topK: 3 } }, 'model'),
    /moe\.topK = 3: must be at most model\.moe\.experts \(2\)/,
  );
  assert.throws(() => parseOrExplain(ModelSchema, { moe: { experts: 1 } }, 'model'), /moe\.experts = 1/);
  assert.equal(parseOrExplain(ModelSchema, {}, 'model').moe, null, 'MoE is off by default');
  assert.deepEqual(parseOrExplain(ModelSchema, { moe: { experts: 8 } }, 'model').moe, {
    experts: 8,
    topK: 2,
    capacityFactor: 1.25,
    auxLossWeight: 0.01,
    every: 1,
  });
});

test('forward and backward on wasm (no gather gradient exists there): every weight gets a finite gradient', () => {
  assert.equal(tf.getBackend(), 'wasm');
  const cfg = tiny();
  const w = initWeights(cfg, 1);
  const { ids, targets } = windowsToTensors(toy, [0, 40, 80, 120], 16);
  const { value, grads } = tf.variableGrads(() => trainingLoss(w, cfg, ids, targets).total);
  assert.ok(Number.isFinite(value.dataSync()[0]), 'Number.isFinite(value.dataSync()[0])');
  for (const [name, v] of w) {
    const g = grads[v.name];
    assert.ok(g, `no gradient for ${name}`);
    const norm = tf.tidy(() => tf.norm(g).dataSync()[0]);
    assert.ok(Number.isFinite(norm) && norm > 0, `gradient of ${name} is ${norm}`);
  }
  tf.dispose(grads);
  value.dispose();
  disposeWeights(w);
});

test('routing: each token picks its top-k experts; an expert takes at most `capacity` tokens, the first in order', () => {
  const N = 32;
  const probs = tf.softmax(tf.randomNormal([N, 4], 0, 1, 'float32', 7)) as tf.Tensor2D;
  const p = rows(probs);
  const roomy = route(probs, moe({ topK: 2, capacityFactor: 2 })); // capacity 32: nothing dropped
  const chosen = rows(roomy.chosen);
  for (let n = 0; n < N; n++) {
    const top2 = [...p[n].keys()]
      .sort((a, b) => p[n][b] - p[n][a])
      .slice(0, 2)
      .sort();
    assert.deepEqual(
      chosen[n].flatMap((c, e) => (c ? [e] : [])),
      top2,
      `token ${n}`,
    );
  }
  assert.deepEqual(rows(roomy.kept), chosen);
  // Mixtral renormalisation: a kept token's gates are its top-2 probabilities scaled to sum to 1.
  for (const row of rows(roomy.gates))
    assert.ok(Math.abs(row.reduce((a, b) => a + b) - 1) < 1e-5, 'Math.abs(row.reduce((a, b) => a + b) - 1) < 1e-5');

  const cfg = moe({ topK: 2, capacityFactor: 0.25 });
  const capacity = expertCapacity(cfg, N);
  assert.equal(capacity, 4); // ceil(0.25 · 32 · 2 / 4)
  const tight = route(probs, cfg);
  const kept = rows(tight.kept);
  for (let e = 0; e < 4; e++) {
    const choosers = chosen.flatMap((r, n) => (r[e] ? [n] : []));
    const keepers = kept.flatMap((r, n) => (r[e] ? [n] : []));
    assert.deepEqual(keepers, choosers.slice(0, capacity), `expert ${e} keeps its first ${capacity} tokens`);
  }
  const gates = rows(tight.gates);
  const unserved = gates.filter((g) => g.every((x) => x === 0)).length;
  assert.ok(unserved > 0, 'with a tiny capacity some tokens get no expert (they pass through on the residual only)');
  for (let n = 0; n < N; n++) for (let e = 0; e < 4; e++) if (!kept[n][e]) assert.equal(gates[n][e], 0);

  // Switch (topK 1): the gate is the raw router probability of the chosen expert.
  const switchGates = rows(route(probs, moe({ topK: 1, capacityFactor: 4 })).gates);
  for (let n = 0; n < N; n++)
    assert.ok(
      Math.abs(Math.max(...switchGates[n]) - Math.max(...p[n])) < 1e-6,
      'Math.abs(Math.max(...switchGates[n]) - Math.max(...p[n])) < 1e-6',
    );
});

test('aux loss is E · Σ f_e · P_e (Switch), checked by hand', () => {
  const probs = tf.tensor2d([
    [0.9, 0.1],
    [0.8, 0.2],
    [0.3, 0.7],
    [0.6, 0.4],
  ]);
  // top-1 picks experts 0, 0, 1, 0: f = [3/4, 1/4]; P = [0.65, 0.35]; 2 · (0.75·0.65 + 0.25·0.35) = 1.15
  assert.ok(
    Math.abs(route(probs, moe({ experts: 2, topK: 1 })).aux.dataSync()[0] - 1.15) < 1e-6,
    'Math.abs(route(probs, moe({ experts: 2, topK: 1 })).aux.dataSync()[0] - 1.15) < 1e-6',
  );
  const three = tf.tensor2d([
    [0.5, 0.3, 0.2],
    [0.1, 0.6, 0.3],
  ]);
  // top-2 picks {0,1} and {1,2}: f = [1, 2, 1] / 4; P = [0.3, 0.45, 0.25]; 3 · (0.075 + 0.225 + 0.0625) = 1.0875
  assert.ok(
    Math.abs(route(three, moe({ experts: 3, topK: 2 })).aux.dataSync()[0] - 1.0875) < 1e-6,
    'Math.abs(route(three, moe({ experts: 3, topK: 2 })).aux.dataSync()[0] - 1.0875) < 1e-6',
  );
  const uniform = tf.fill([8, 4], 0.25) as tf.Tensor2D;
  assert.ok(Math.abs(route(uniform, moe()).aux.dataSync()[0] - 1) < 1e-6, 'perfect balance gives 1');
});

test('training minimises CE + auxLossWeight · aux; evaluation scores cross-entropy only', () => {
  const { ids, targets } = windowsToTensors(toy, [0, 40], 16);
  const light = tiny({ auxLossWeight: 0 });
  const heavy = tiny({ auxLossWeight: 100 });
  const w = initWeights(light, 2);
  const a = trainingLoss(w, heavy, ids, targets);
  const [total, ce, aux] = [a.total, a.ce, a.aux].map((t) => t.dataSync()[0]);
  assert.ok(aux > 0.9, `aux ${aux}`);
  assert.ok(Math.abs(total - (ce + 100 * aux)) < 1e-3, 'Math.abs(total - (ce + 100 * aux)) < 1e-3');
  assert.equal(trainingLoss(w, light, ids, targets).total.dataSync()[0], ce);
  assert.equal(forwardWithAux(w, light, ids).aux.dataSync()[0], aux);
  const opts = { maxTokens: 512, batchSize: 4 };
  assert.equal(
    evaluate(w, heavy, toy, opts).loss,
    evaluate(w, light, toy, opts).loss,
    'auxLossWeight does not change the held-out loss',
  );
  disposeWeights(w);
});

/** Max over mean of tokens per expert (1 is perfect balance) on a fixed set of windows. */
function imbalance(w: Weights, cfg: GptConfig, data: TokenIds): number {
  return tf.tidy(() => {
    const { ids } = windowsToTensors(
      data,
      Array.from({ length: 32 }, (_, i) => i * 97),
      cfg.seqLen,
    );
    const load = Array.from(forwardWithAux(w, cfg, ids).expertLoad[0].dataSync());
    return Math.max(...load) / (load.reduce((a, b) => a + b) / load.length);
  });
}

test('the aux loss spreads a router skewed onto one expert; without it the skew stays', async () => {
  const ratios: Record<string, { before: number; after: number }> = {};
  for (const auxLossWeight of [0, 0.1]) {
    const cfg: GptConfig = {
      vocabSize: 256,
      seqLen: 16,
      dModel: 32,
      nLayer: 1,
      nHead: 2,
      moe: moe({ topK: 2, capacityFactor: 2, auxLossWeight }),
    };
    const w = initWeights(cfg, 1);
    // Skew: a constant offset after ln_2 that the router's column for expert 0 aligns with, so
    // every token's top-2 includes expert 0 (max/mean = 2 with top-2 of 4).
    const offset = tf.fill([32], 0.3);
    w.get('h.0.ln_2.bias')!.assign(offset);
    const router = w.get('h.0.moe.router.weight')!;
    router.assign(
      tf.add(
        router,
        tf.pad(tf.reshape(tf.mul(offset, 0.5), [32, 1]), [
          [0, 0],
          [0, 3],
        ]),
      ),
    );
    const before = imbalance(w, cfg, toy);
    const trainer = new Trainer(cfg, w, { ...train, seed: 2 }, toy);
    await trainer.run();
    ratios[auxLossWeight] = { before, after: imbalance(w, cfg, toy) };
    trainer.dispose();
    disposeWeights(w);
  }
  const shown = JSON.stringify(ratios);
  assert.ok(ratios[0].before > 1.9 && ratios[0.1].before > 1.9, `the toy starts skewed: ${shown}`);
  assert.ok(ratios[0.1].after < 1.5, `with the aux loss the load evens out: ${shown}`);
  assert.ok(ratios[0].after > ratios[0.1].after + 0.3, `without it, it does not even out as much: ${shown}`);
});

test('an MoE model learns real text: held-out loss falls', async () => {
  const dir = await exportBrown(tempDir(), 'a');
  const texts = await Promise.all(
    (await fs.readdir(dir))
      .filter((f) => f.endsWith('.txt'))
      .slice(0, 30)
      .map((f) => fs.readFile(path.join(dir, f), 'utf8')),
  );
  const cfg: GptConfig = { vocabSize: 256, seqLen: 32, dModel: 32, nLayer: 2, nHead: 2, moe: moe({ every: 2 }) };
  const w = initWeights(cfg, 0);
  const heldOut = encodeDocuments(texts.slice(25));
  const opts = { maxTokens: 2048, batchSize: 16 };
  const beforeLoss = evaluate(w, cfg, heldOut, opts).loss;
  const trainer = new Trainer(
    cfg,
    w,
    { ...train, steps: 60, learningRate: 1e-2, warmupSteps: 5 },
    encodeDocuments(texts.slice(0, 25)),
  );
  const summary = await trainer.run();
  const tensors = tf.memory().numTensors;
  trainer.trainStep();
  assert.equal(tf.memory().numTensors, tensors, 'an MoE training step must not leak tensors');
  const afterLoss = evaluate(w, cfg, heldOut, opts).loss;
  assert.ok(
    afterLoss < beforeLoss - 1.5,
    `held-out loss ${afterLoss} should beat the untrained ${beforeLoss} clearly (train ${summary.finalLoss})`,
  );
  trainer.dispose();
  disposeWeights(w);
});
