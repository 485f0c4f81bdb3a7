// Data-parallel replicas for the wasm backend, which runs one thread per isolate under Node: the
// main thread plus K−1 worker threads, each with its own backend and its own copy of the weights.
// Every step the main thread copies the current weights into shared memory, hands each worker its
// share of the batch's windows, computes its own share, then waits for the workers and adds their
// gradients in worker order (so the sum is deterministic). Workers leave loss and gradients in
// shared memory and the main thread waits with Atomics.wait rather than a Promise: a step stays an
// ordinary synchronous call, like the one-thread step, and nothing is copied through messages but
// the window starts.
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { GptConfig, Weights } from './gpt';
import type { TokenIds } from './tokenizer';

/** A replica's state word (Int32 0 of its control buffer). */
export const STARTING = 0;
export const READY = 1;
export const BUSY = 2;
export const DONE = 3;
export const FAILED = 4;
export const EXITED = 5;

/** Control buffer layout: Int32 [state, error length, tensors held, bytes held], Float64 [loss, aux], then the error text. */
export const CONTROL_BYTES = 32 + 4096;
export const ERROR_OFFSET = 32;

/** What a worker is started with (workerData). */
export interface ReplicaInit {
  cfg: GptConfig;
  names: string[];
  shapes: number[][];
  backend: string;
  tokens: SharedArrayBuffer;
  tokenBits: 8 | 16;
  weights: SharedArrayBuffer; // written by the main thread before each step, read by every worker
  grads: SharedArrayBuffer; // this worker's weighted gradient sum, in `names` order
  control: SharedArrayBuffer;
}

/** One step's work for a worker: micro-batch parts (window starts) and the step's window count. */
export interface ReplicaJob {
  parts: number[][];
  totalWindows: number;
}

export interface LossAndGrads {
  loss: number;
  aux: number;
  grads: tf.NamedTensorMap;
}

// Generous backstops: a worker that died is noticed at once (it flags EXITED); these only catch a hang.
const START_TIMEOUT_MS = 120_000;
const STEP_TIMEOUT_MS = 30 * 60_000;

// Below this much work per micro-batch (parameters × tokens), syncing replicas costs more than it
// saves: measured on 2 cores, 5.6e6 ran 19 ms/step on one thread and 24 on two; 2.3e7 ran 55 vs 39.
export const AUTO_MIN_WORK = 2e7;

/**
 * How many replicas to train with: `threads` on wasm ('auto': one per core, if a micro-batch has at
 * least AUTO_MIN_WORK of work), one on native backends.
 */
export function replicaCount(
  threads: number | 'auto' | undefined,
  batchSize: number,
  workPerMicroBatch: number,
): number {
  // tfjs-node(-gpu) kernels are multi-threaded already; a second replica would only compete for cores.
  if (tf.getBackend() !== 'wasm') return 1;
  if (threads === 'auto' && workPerMicroBatch < AUTO_MIN_WORK) return 1;
  const wanted = threads === 'auto' ? os.availableParallelism() : (threads ?? 1);
  return Math.max(1, Math.min(wanted, batchSize)); // a replica with no windows would only add overhead
}

/** Splits every micro-batch into `count` contiguous parts; result[r] is replica r's list of parts. */
export function splitAcross(microBatches: number[][], count: number): number[][][] {
  const shares: number[][][] = Array.from({ length: count }, () => []);
  for (const starts of microBatches) {
    for (let r = 0; r < count; r++) {
      const part = starts.slice(Math.floor((r * starts.length) / count), Math.floor(((r + 1) * starts.length) / count));
      if (part.length > 0) shares[r].push(part);
    }
  }
  return shares;
}

interface Replica {
  worker: Worker;
  exited: boolean; // seen by the main thread's event loop, between steps
  state: Int32Array;
  results: Float64Array;
  errorText: Uint8Array;
  grads: Float32Array;
}

/** Pools with live worker threads, so a backend recovery can end them all (see terminateAllReplicas). */
const livePools = new Set<ReplicaPool>();

/**
 * Ends every replica thread of this process. After a backend abort the threads may hold a dead or
 * half-used wasm instance (and up to 4 GiB each); the next training run starts fresh ones.
 */
export function terminateAllReplicas(): number {
  let n = 0;
  for (const pool of [...livePools]) {
    n += pool.workers;
    pool.dispose();
  }
  return n;
}

/** The K−1 worker replicas (the main thread is replica 0 and is not in here). */
export class ReplicaPool {
  private readonly replicas: Replica[] = [];
  private readonly weightsFlat: Float32Array;
  private readonly offsets: number[] = [];

  constructor(
    cfg: GptConfig,
    weights: Weights,
    tokens: TokenIds,
    readonly workers: number,
  ) {
    const names = [...weights.keys()];
    const shapes = [...weights.values()].map((w) => w.shape);
    let size = 0;
    for (const w of weights.values()) {
      this.offsets.push(size);
      size += w.size;
    }
    // The token stream is shared once; workers read it in place for the whole training run.
    const tokenBuffer = new SharedArrayBuffer(tokens.byteLength);
    new Uint8Array(tokenBuffer).set(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
    const tokenBits = tokens.BYTES_PER_ELEMENT === 1 ? 8 : 16;
    const weightsBuffer = new SharedArrayBuffer(size * 4);
    this.weightsFlat = new Float32Array(weightsBuffer);
    for (let i = 0; i < workers; i++) {
      const control = new SharedArrayBuffer(CONTROL_BYTES);
      const grads = new SharedArrayBuffer(size * 4);
      const init: ReplicaInit = {
        cfg,
        names,
        shapes,
        backend: tf.getBackend(),
        tokens: tokenBuffer,
        tokenBits,
        weights: weightsBuffer,
        grads,
        control,
      };
      // A .js entry that registers tsx, so this works under `node --import tsx` and bin/minerflow.js alike.
      const worker = new Worker(path.join(__dirname, 'replica-worker.js'), { workerData: init });
      worker.unref(); // replicas never keep the process alive
      worker.on('error', () => undefined); // reported through the control buffer (FAILED/EXITED)
      const replica: Replica = {
        worker,
        exited: false,
        state: new Int32Array(control, 0, 4),
        results: new Float64Array(control, 16, 2),
        errorText: new Uint8Array(control, ERROR_OFFSET),
        grads: new Float32Array(grads),
      };
      // A worker ended from outside (terminate) runs no JS to flag itself; its 'exit' event does.
      worker.on('exit', () => (replica.exited = true));
      this.replicas.push(replica);
    }
    livePools.add(this);
  }

  /** Copies the weights to shared memory and starts worker i on shares[i]. */
  start(weights: Weights, shares: number[][][], totalWindows: number): void {
    this.replicas.forEach((r, i) => {
      const state = this.waitWhile(r, i, [STARTING, BUSY], START_TIMEOUT_MS);
      if (state !== READY && state !== DONE) throw this.failure(r, i, state);
    });
    let k = 0;
    for (const w of weights.values()) this.weightsFlat.set(w.dataSync() as Float32Array, this.offsets[k++]);
    this.replicas.forEach((r, i) => {
      Atomics.store(r.state, 0, BUSY);
      r.worker.postMessage({ parts: shares[i] ?? [], totalWindows } satisfies ReplicaJob);
    });
  }

  /** Waits for every worker and adds its loss, aux and gradients to `local` (the main thread's), in worker order. */
  finish(weights: Weights, local: LossAndGrads): LossAndGrads {
    let { loss, aux } = local;
    let sums = local.grads;
    this.replicas.forEach((r, i) => {
      const state = this.waitWhile(r, i, [BUSY], STEP_TIMEOUT_MS);
      if (state !== DONE) throw this.failure(r, i, state);
      loss += r.results[0];
      aux += r.results[1];
      const next: tf.NamedTensorMap = {};
      let k = 0;
      for (const w of weights.values()) {
        const offset = this.offsets[k++];
        next[w.name] = tf.tidy(() =>
          tf.add(sums[w.name], tf.tensor(r.grads.subarray(offset, offset + w.size), w.shape)),
        );
      }
      tf.dispose(sums);
      sums = next;
    });
    return { loss, aux, grads: sums };
  }

  /** Tensors each worker holds after its last step (tf.memory() there), to check they do not leak. */
  memory(): { numTensors: number; numBytes: number }[] {
    return this.replicas.map((r) => ({ numTensors: Atomics.load(r.state, 2), numBytes: Atomics.load(r.state, 3) }));
  }

  dispose(): void {
    for (const r of this.replicas) void r.worker.terminate().catch(() => undefined);
    this.replicas.length = 0;
    livePools.delete(this);
  }

  /** Worker threads that have not exited yet (tests). */
  get running(): number {
    return this.replicas.filter((r) => !r.exited).length;
  }

  private waitWhile(r: Replica, index: number, states: number[], timeoutMs: number): number {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = Atomics.load(r.state, 0);
      if (state === FAILED) return FAILED; // its message says why
      if (r.exited) return EXITED;
      if (!states.includes(state)) return state;
      if (Date.now() > deadline)
        throw new Error(`training replica ${index + 1} did not answer within ${timeoutMs / 1000} s`);
      Atomics.wait(r.state, 0, state, 1000);
    }
  }

  private failure(r: Replica, index: number, state: number): Error {
    const length = Atomics.load(r.state, 1);
    const text = new TextDecoder().decode(r.errorText.slice(0, length));
    return new Error(
      `training replica ${index + 1} ${state === EXITED ? 'exited' : 'failed'}${text ? `: ${text}` : ''}`,
    );
  }
}
