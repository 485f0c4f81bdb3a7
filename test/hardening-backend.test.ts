// A crashed TensorFlow.js backend must not poison the worker: after a real wasm abort in this
// process, the backend is re-initialised and the next training step runs normally.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { BackendAbortError, initBackend, isBackendAbort, recoverBackend, withBackendRecovery } from '../model/backend';
import { initWeights, type GptConfig } from '../model/gpt';
import { ReplicaPool } from '../model/parallel';
import { encodeDocuments } from '../model/tokenizer';
import { Trainer, type TrainConfig } from '../model/trainer';
import { waitFor } from './helpers/temporal';

const cfg: GptConfig = { vocabSize: 256, seqLen: 16, dModel: 16, nLayer: 1, nHead: 2 };
const data = encodeDocuments(
  Array.from({ length: 60 }, (_, i) => `backend recovery document ${i}: the quick brown fox jumps.`),
);
const train: TrainConfig = {
  steps: 4,
  batchSize: 4,
  learningRate: 1e-2,
  warmupSteps: 1,
  weightDecay: 0.1,
  gradClip: 1,
  beta1: 0.9,
  beta2: 0.95,
  seed: 3,
  threads: 1,
};

/** One real training step; its loss must be finite. */
function trainOneStep(): number {
  const weights = initWeights(cfg, 1);
  const trainer = new Trainer(cfg, weights, train, data);
  try {
    return trainer.trainStep().loss;
  } finally {
    trainer.dispose();
    for (const w of weights.values()) w.dispose();
  }
}

const smallOpWorks = () => tf.tidy(() => tf.sum(tf.matMul(tf.ones([8, 8]), tf.ones([8, 8]))).dataSync()[0]) === 512;

test('after a wasm crash (an output past the 4 GiB heap) the backend is poisoned; recoverBackend makes it healthy in the same process', async () => {
  assert.equal(await initBackend('wasm', () => undefined), 'wasm');
  assert.ok(Number.isFinite(trainOneStep()), 'Number.isFinite(trainOneStep())');
  // 32768 × 32767 floats = 4 294 836 224 bytes: below 2^32, above what the heap can still grow to.
  // malloc fails without touching the memory, and the module traps.
  const crash = (() => {
    try {
      tf.matMul(tf.ones([32768, 1]), tf.ones([1, 32767]));
    } catch (err) {
      return err;
    }
  })();
  assert.ok(crash instanceof Error, 'the oversized op failed');
  assert.ok(isBackendAbort(crash), `recognised as a backend crash: ${String(crash)}`);
  assert.throws(
    trainOneStep,
    (err: unknown) => isBackendAbort(err),
    'without recovery the next training step fails too: the worker is poisoned',
  );
  const logs: string[] = [];
  assert.equal(await recoverBackend((m) => logs.push(m)), 'wasm');
  assert.match(logs.join('\n'), /backend 'wasm' re-initialised after a crash/);
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(smallOpWorks(), 'smallOpWorks()');
  assert.ok(Number.isFinite(trainOneStep()), 'a training step runs after recovery');
});

test(
  "the production symptom, wasm out of memory ('Aborted()'), fails the task with BackendAbortError and the next task trains",
  { timeout: 300_000 },
  async () => {
    await initBackend('wasm', () => undefined);
    const logs: string[] = [];
    await assert.rejects(
      withBackendRecovery(
        async () => {
          // Two 2.1 GB outputs: the second cannot fit the 4 GiB heap and Emscripten aborts.
          const kept: tf.Tensor[] = [];
          for (let i = 0; i < 3; i++) kept.push(tf.matMul(tf.ones([23000, 1]), tf.ones([1, 23000])));
          return kept.length;
        },
        (m) => logs.push(m),
      ),
      (err: Error) => {
        assert.ok(err instanceof BackendAbortError, 'err instanceof BackendAbortError');
        assert.equal(err.name, 'BackendAbortError');
        // On a fresh module this is Emscripten's 'Aborted()'; after an earlier crash and recovery the same
        // allocations may trap instead. Either is a dead module.
        assert.match(
          err.message,
          /the TensorFlow\.js backend crashed \((.*Aborted\(\)|table index is out of bounds|memory access out of bounds)/,
        );
        assert.match(err.message, /Lower training\.batchSize/);
        return true;
      },
    );
    assert.equal(logs.length, 1);
    assert.ok(Number.isFinite(trainOneStep()), 'the next task runs on a healthy backend');
    // An ordinary error passes through untouched and does not reset anything.
    const weights = initWeights(cfg, 2);
    await assert.rejects(
      withBackendRecovery(async () => {
        throw new Error('training.batchSize must be an integer ≥ 1');
      }),
      /^Error: training\.batchSize/,
    );
    assert.equal(weights.get('wte')!.isDisposed, false, 'no reset for a non-crash error');
  },
);

test(
  'recovery ends replica threads, which may hold a dead wasm instance of their own',
  { timeout: 120_000 },
  async () => {
    await initBackend('wasm', () => undefined);
    const weights = initWeights(cfg, 1);
    const pool = new ReplicaPool(cfg, weights, data, 2);
    assert.equal(pool.running, 2);
    await recoverBackend(() => undefined);
    await waitFor('replica threads to exit', async () => (pool.running === 0 ? true : undefined), 60_000);
    assert.ok(Number.isFinite(trainOneStep()), 'Number.isFinite(trainOneStep())');
  },
);

test('isBackendAbort: crash texts, including a replica thread reporting one; not ordinary errors', () => {
  assert.ok(
    isBackendAbort(new Error('Aborted(). Build with -sASSERTIONS for more info.')),
    "isBackendAbort(new Error('Aborted(). Build with -sASSERTIONS for more info.'))",
  );
  assert.ok(
    isBackendAbort(
      new Error('training replica 1 failed: RuntimeError: Aborted(). Build with -sASSERTIONS for more info.'),
    ),
    "isBackendAbort(new Error('training replica 1 failed: RuntimeError: Aborted(). Build with -sASSERTIONS for m…",
  );
  assert.ok(
    isBackendAbort(new Error('training replica 2 failed: RuntimeError: memory access out of bounds')),
    "isBackendAbort(new Error('training replica 2 failed: RuntimeError: memory access out of bounds'))",
  );
  assert.ok(
    !isBackendAbort(new Error('model.dModel (30) must be divisible by model.nHead (4)')),
    "!isBackendAbort(new Error('model.dModel (30) must be divisible by model.nHead (4)'))",
  );
  assert.ok(
    !isBackendAbort(new RangeError('Invalid typed array length: 1200000000')),
    "!isBackendAbort(new RangeError('Invalid typed array length: 1200000000'))",
  );
  assert.ok(!isBackendAbort('Aborted by the user'), "!isBackendAbort('Aborted by the user')");
});
