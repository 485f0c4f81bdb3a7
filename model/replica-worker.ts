// A training replica in a worker thread: its own TensorFlow.js backend and copy of the weights.
// Per job it loads the weights the main thread left in shared memory, computes loss and gradients of
// its windows, writes them to its shared gradient buffer and flips its state word to DONE.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from './backend';
import type { Weights } from './gpt';
import { DONE, ERROR_OFFSET, EXITED, FAILED, READY, type ReplicaInit, type ReplicaJob } from './parallel';
import { batchLossAndGrads } from './trainer';

const init = workerData as ReplicaInit;
const state = new Int32Array(init.control, 0, 4);
const results = new Float64Array(init.control, 16, 2);
const errorText = new Uint8Array(init.control, ERROR_OFFSET);

function signal(s: number): void {
  Atomics.store(state, 0, s);
  Atomics.notify(state, 0);
}

function fail(err: unknown): void {
  const bytes = new TextEncoder()
    .encode(String(err instanceof Error ? (err.stack ?? err.message) : err))
    .slice(0, errorText.length);
  errorText.set(bytes);
  Atomics.store(state, 1, bytes.length);
  signal(FAILED);
}

// However this thread ends (terminate, a crash), the main thread must not wait for it.
process.on('exit', () => {
  if (Atomics.load(state, 0) !== FAILED) signal(EXITED);
});

async function main(): Promise<void> {
  await initBackend(init.backend as BackendChoice, () => undefined);
  const tokens = init.tokenBits === 8 ? new Uint8Array(init.tokens) : new Uint16Array(init.tokens);
  const flat = new Float32Array(init.weights);
  const grads = new Float32Array(init.grads);
  const weights: Weights = new Map(init.names.map((name, i) => [name, tf.variable(tf.zeros(init.shapes[i]), true)]));
  const offsets: number[] = [];
  let size = 0;
  for (const w of weights.values()) {
    offsets.push(size);
    size += w.size;
  }
  parentPort!.on('message', (job: ReplicaJob) => {
    try {
      tf.tidy(() => {
        let k = 0;
        for (const w of weights.values()) {
          const offset = offsets[k++];
          w.assign(tf.tensor(flat.subarray(offset, offset + w.size), w.shape));
        }
      });
      let loss = 0;
      let aux = 0;
      if (job.parts.length > 0) {
        const r = batchLossAndGrads(weights, init.cfg, tokens, job.parts, job.totalWindows);
        let k = 0;
        for (const w of weights.values()) grads.set(r.grads[w.name].dataSync() as Float32Array, offsets[k++]);
        tf.dispose(r.grads);
        ({ loss, aux } = r);
      } else grads.fill(0);
      results[0] = loss;
      results[1] = aux;
      Atomics.store(state, 2, tf.memory().numTensors);
      Atomics.store(state, 3, tf.memory().numBytes);
      signal(DONE);
    } catch (err) {
      fail(err);
    }
  });
  signal(READY);
}

main().catch(fail);
