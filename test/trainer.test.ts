// The trainer's data-parallel replicas, gradient accumulation and non-finite guard.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { TrainingSchema } from '../common/config';
import { initBackend } from '../model/backend';
import {
  loadOptimizerMoments,
  loadWeights,
  OPTIMIZER_FILE,
  saveTrainingState,
  STATE_FILE,
  WEIGHTS_FILE,
  type TrainingStateMeta,
} from '../model/checkpoint';
import { disposeWeights, initWeights, type GptConfig, type Weights } from '../model/gpt';
import { cosineWithWarmup } from '../model/optimizer';
import { AUTO_MIN_WORK, ReplicaPool, replicaCount } from '../model/parallel';
import { encodeDocuments } from '../model/tokenizer';
import { Trainer, type TrainConfig } from '../model/trainer';
import { tempDir } from './helpers/settings';

before(async () => {
  await initBackend('wasm', () => undefined);
});

const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
const data = encodeDocuments(
  Array.from({ length: 120 }, (_, i) => `trainer test document ${i}: the quick brown fox jumps.`),
);
const base: TrainConfig = {
  steps: 40,
  batchSize: 8,
  learningRate: 1e-2,
  warmupSteps: 4,
  weightDecay: 0.1,
  gradClip: 1,
  beta1: 0.9,
  beta2: 0.95,
  seed: 3,
};

function maxDiff(a: Weights, b: Weights): number {
  let worst = 0;
  for (const [name, w] of a)
    worst = Math.max(
      worst,
      tf.tidy(() => tf.max(tf.abs(tf.sub(w, b.get(name)!))).dataSync()[0]),
    );
  return worst;
}

function cloneAll(vars: Map<string, tf.Variable>): Weights {
  return new Map([...vars].map(([name, v]) => [name, tf.variable(v.clone(), false)]));
}

async function trained(
  train: TrainConfig,
  untilStep: number,
): Promise<{ weights: Weights; trainer: Trainer; tokens: number }> {
  const weights = initWeights(cfg, 5);
  const trainer = new Trainer(cfg, weights, train, data);
  const s = await trainer.run({ untilStep });
  return { weights, trainer, tokens: s.tokens };
}

function done(...runs: { weights: Weights; trainer: Trainer }[]): void {
  for (const r of runs) {
    r.trainer.dispose();
    disposeWeights(r.weights);
  }
}

test('two replicas (main thread + a worker) train the same weights as one thread', async () => {
  const one = await trained({ ...base, threads: 1 }, 10);
  const two = await trained({ ...base, threads: 2 }, 10);
  assert.equal(one.trainer.threads, 1);
  assert.equal(two.trainer.threads, 2);
  // Same batches, gradients averaged by share: equal up to float summation order.
  const diff = maxDiff(one.weights, two.weights);
  assert.ok(diff < 1e-5, `weights differ by ${diff}`);
  assert.ok(maxDiff(one.weights, initWeights(cfg, 5)) > 1e-3, 'training moved the weights');
  done(one, two);
});

test("threads 'auto' is one per core on wasm for big steps, one for steps too small to gain; never more than the batch", () => {
  assert.equal(replicaCount('auto', 16, AUTO_MIN_WORK / 10), 1);
  assert.equal(replicaCount('auto', 16, AUTO_MIN_WORK), Math.min(os.availableParallelism(), 16));
  assert.equal(replicaCount(4, 2, 0), 2, 'an explicit count is honoured, capped at the batch');
  assert.equal(replicaCount(undefined, 16, AUTO_MIN_WORK), 1);
});

test('gradient accumulation: 2 micro-batches of 4 windows equal one batch of 8, one schedule step each', async () => {
  const whole = await trained({ ...base, threads: 1 }, 8);
  const accumulated = await trained({ ...base, batchSize: 4, gradAccumSteps: 2, threads: 1 }, 8);
  const parallel = await trained({ ...base, batchSize: 4, gradAccumSteps: 2, threads: 2 }, 8);
  assert.equal(accumulated.trainer.step, 8);
  assert.equal(accumulated.trainer.optimizer.t, 8, 'one optimizer step per effective batch');
  assert.equal(accumulated.tokens, 8 * 8 * cfg.seqLen, 'tokens count the effective batch');
  for (const r of [accumulated, parallel]) {
    const diff = maxDiff(whole.weights, r.weights);
    assert.ok(diff < 1e-5, `weights differ by ${diff}`);
  }
  done(whole, accumulated, parallel);
});

test('exact resume with 2 threads: N steps, save, load, N more equals 2N straight', async () => {
  const train = { ...base, steps: 20, threads: 2, gradAccumSteps: 2, batchSize: 4 };
  const straight = await trained(train, 20);
  const first = await trained(train, 10);
  const dir = tempDir();
  await saveTrainingState(dir, first.weights, first.trainer.optimizer, {
    counters: first.trainer.counters(),
    trainLoss: 0,
    backend: 'wasm',
  });
  done(first);
  const counters = (JSON.parse(await fs.readFile(path.join(dir, STATE_FILE), 'utf8')) as TrainingStateMeta).counters;
  const resumed = await loadWeights(path.join(dir, WEIGHTS_FILE), cfg);
  const t = new Trainer(cfg, resumed, train, data, counters);
  await loadOptimizerMoments(path.join(dir, OPTIMIZER_FILE), t.optimizer);
  const rest = await t.run();
  assert.equal(rest.history[0].step, 11);
  assert.equal(maxDiff(straight.weights, resumed), 0, 'bit-identical to the straight run');
  done(straight, { weights: resumed, trainer: t });
});

test('a NaN batch on the worker replicas is skipped and counted, and training goes on', async () => {
  const weights = initWeights(cfg, 1);
  const trainer = new Trainer(cfg, weights, { ...base, threads: 2 }, data);
  trainer.trainStep();
  const wte = weights.get('wte')!;
  const saved = wte.clone();
  // Plant: a NaN embedding (sent to every replica with the weights) makes the next step's loss NaN.
  wte.assign(tf.fill(wte.shape as [number, number], NaN));
  const bad = trainer.trainStep();
  assert.ok(!Number.isFinite(bad.loss), '!Number.isFinite(bad.loss)');
  assert.equal(bad.skipped, 1);
  assert.equal(trainer.optimizer.t, 1, 'the skipped step applied nothing');
  wte.assign(saved);
  const ok = trainer.trainStep();
  assert.ok(
    Number.isFinite(ok.loss) && Number.isFinite(ok.gradNorm),
    'Number.isFinite(ok.loss) && Number.isFinite(ok.gradNorm)',
  );
  assert.equal(ok.skipped, 1);
  assert.equal(ok.restores, 0);
  trainer.dispose();
  disposeWeights(weights);
  saved.dispose();
});

test('skipLimit non-finite steps in a row restore the last good weights and moments once, with a lower LR', async () => {
  const weights = initWeights(cfg, 1);
  const trainer = new Trainer(cfg, weights, { ...base, threads: 1, skipLimit: 3, lrBackoff: 0.5, emaDecay: 0.9 }, data);
  trainer.plantNonFinite = (step) => step >= 4 && step < 7; // three bad steps: 4, 5, 6
  for (let i = 0; i < 3; i++) trainer.trainStep();
  // The last good step (3) starts from these: they are what a restore must bring back.
  const goodWeights = cloneAll(weights);
  const goodM = cloneAll(trainer.optimizer.m);
  const goodEma = cloneAll(trainer.ema!.shadow);
  const last = trainer.trainStep();
  assert.ok(Number.isFinite(last.loss) && last.restores === 0, 'Number.isFinite(last.loss) && last.restores === 0');
  const afterGood = cloneAll(weights);
  const reports = [trainer.trainStep(), trainer.trainStep()];
  assert.deepEqual(
    reports.map((r) => [r.skipped, r.restores]),
    [
      [1, 0],
      [2, 0],
    ],
  );
  assert.equal(maxDiff(afterGood, weights), 0, 'skipped steps leave the weights alone');
  const third = trainer.trainStep();
  assert.equal(third.skipped, 3);
  assert.equal(third.restores, 1, 'exactly one restore');
  assert.equal(trainer.lrScale, 0.5);
  assert.equal(maxDiff(goodWeights, weights), 0, 'weights are the last good ones');
  assert.equal(maxDiff(goodM, trainer.optimizer.m), 0, 'AdamW moments are the last good ones');
  assert.equal(maxDiff(goodEma, trainer.ema!.shadow), 0, 'the EMA is the last good one');
  assert.equal(trainer.optimizer.t, 3, 'the bias-correction step count goes back too');
  const next = trainer.trainStep();
  assert.ok(Number.isFinite(next.loss), 'Number.isFinite(next.loss)');
  assert.equal(next.restores, 1);
  assert.equal(
    next.lr,
    0.5 * cosineWithWarmup(7, base.learningRate, base.warmupSteps, base.steps),
    'the schedule goes on at half the LR',
  );
  assert.equal(trainer.counters().restores, 1, 'restores are saved with the state');
  trainer.dispose();
  for (const m of [goodWeights, goodM, goodEma, afterGood, weights]) disposeWeights(m);
});

test('training leaks no tensors: counts and bytes are flat across steps, skips and a restore', async () => {
  const tiny: GptConfig = { vocabSize: 256, seqLen: 8, dModel: 8, nLayer: 1, nHead: 1 };
  const weights = initWeights(tiny, 0);
  const trainer = new Trainer(
    tiny,
    weights,
    { ...base, steps: 10_000, batchSize: 2, gradAccumSteps: 2, emaDecay: 0.99, skipLimit: 2, threads: 2 },
    data,
  );
  trainer.plantNonFinite = (step) => step >= 150 && step < 152;
  await trainer.run({ untilStep: 100 });
  const at100 = tf.memory();
  const workersAt100 = trainer.replicaMemory();
  assert.equal(workersAt100.length, 1);
  await trainer.run({ untilStep: 300 });
  assert.deepEqual(trainer.replicaMemory(), workersAt100, 'the worker replica holds the same tensors');
  assert.equal(trainer.restores, 1, 'the planted restore happened in between');
  assert.equal(tf.memory().numTensors, at100.numTensors);
  assert.equal(tf.memory().numBytes, at100.numBytes);
  trainer.dispose();
  disposeWeights(weights);
});

test('bad trainer and config values are refused by field name and value', () => {
  const weights = initWeights(cfg, 0);
  assert.throws(
    () => new Trainer(cfg, weights, { ...base, gradAccumSteps: 0 }, data),
    /training\.gradAccumSteps must be an integer ≥ 1 \(got 0\)/,
  );
  assert.throws(
    () => new Trainer(cfg, weights, { ...base, threads: 1.5 }, data),
    /training\.threads must be 'auto' or an integer ≥ 1 \(got 1\.5\)/,
  );
  assert.throws(
    () => new Trainer(cfg, weights, { ...base, lrBackoff: 2 }, data),
    /training\.lrBackoff must be in \(0, 1\] \(got 2\)/,
  );
  disposeWeights(weights);
  const parsed = TrainingSchema.safeParse({ threads: 0 });
  assert.ok(
    !parsed.success && parsed.error.issues.some((i) => i.path.join('.') === 'threads'),
    "!parsed.success && parsed.error.issues.some((i) => i.path.join('.') === 'threads')",
  );
  assert.equal(TrainingSchema.parse({}).threads, 'auto');
});

test('a replica that dies is reported by number, not waited for', async () => {
  const weights = initWeights(cfg, 0);
  const trainer = new Trainer(cfg, weights, { ...base, threads: 2 }, data);
  trainer.trainStep();
  await (
    trainer as unknown as { replicas: { replicas: { worker: { terminate(): Promise<number> } }[] } }
  ).replicas.replicas[0].worker.terminate();
  assert.throws(() => trainer.trainStep(), /training replica 1 exited/);
  trainer.dispose();
  disposeWeights(weights);
});

test('an error inside a replica comes back to the main thread with its message', () => {
  const weights = initWeights(cfg, 0);
  // A config with a layer the weights lack: the worker's forward pass throws on its first window.
  const pool = new ReplicaPool({ ...cfg, nLayer: 2 }, weights, data, 1);
  pool.start(weights, [[[0, 1]]], 2);
  assert.throws(() => pool.finish(weights, { loss: 0, aux: 0, grads: {} }), /training replica 1 failed: .+/);
  pool.dispose();
  disposeWeights(weights);
});

test('replicas start from a plain require of tsx (as bin/minerflow.js does) and never keep the process alive', () => {
  // No dispose(): the worker threads are unref'd, so the process must still exit by itself.
  const script = `
    require('tsx/cjs');
    const { initBackend } = require('./model/backend.ts');
    const { initWeights } = require('./model/gpt.ts');
    const { Trainer } = require('./model/trainer.ts');
    initBackend('wasm', () => undefined).then(async () => {
      const cfg = { vocabSize: 256, seqLen: 8, dModel: 8, nLayer: 1, nHead: 1 };
      const data = new Uint16Array(Array.from({ length: 500 }, (_, i) => (i * 7) % 256));
      const t = new Trainer(cfg, initWeights(cfg, 0), { steps: 3, batchSize: 4, learningRate: 1e-3, warmupSteps: 0, weightDecay: 0, gradClip: 1, beta1: 0.9, beta2: 0.95, seed: 1, threads: 2 }, data);
      const s = await t.run();
      console.log(JSON.stringify({ threads: t.threads, steps: s.steps, loss: s.finalLoss }));
    });`;
  const out = execFileSync(process.execPath, ['-e', script], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  const r = JSON.parse(out.trim().split('\n').pop()!) as { threads: number; steps: number; loss: number };
  assert.equal(r.threads, 2);
  assert.equal(r.steps, 3);
  assert.ok(Number.isFinite(r.loss), 'Number.isFinite(r.loss)');
});
