// How much memory a training run needs, and whether this machine and backend can hold it. An
// oversized model used to abort the wasm backend mid-step (and poison the worker); checking first
// turns that into a permanent error that names the fields to change.
import * as os from 'node:os';
import type { GptConfig } from './gpt';
import { weightShapes } from './gpt';

/**
 * The wasm backend's heap ceiling per instance (main thread and each replica thread): tfjs-backend-wasm
 * 4.22 is a wasm32 build whose memory is declared with a maximum of 65536 pages (4 GiB) and whose
 * Emscripten getHeapMax() returns 4294901760 (dist/tf-backend-wasm.node.js). Past it malloc fails and
 * the module aborts; a single tensor of 4 GiB or more even wraps its 32-bit size and corrupts the heap.
 */
export const WASM_MAX_HEAP_BYTES = 4_294_901_760;

/** Share of the machine's memory a run may plan to use: the rest is the OS, Node, the worker itself. */
export const HOST_MEMORY_FRACTION = 0.8;

// Floats kept alive per token during one micro-batch's loss-and-gradients, from model/gpt.ts's
// forward. tf.variableGrads keeps every forward intermediate until the backward pass ends and frees
// none of the backward's own temporaries before its tidy closes, so the peak is forward + backward:
// - per layer and model dimension: qkv, 3 head reshapes, y, merged, c_proj, 2 residuals (~12d), two
//   layer norms (~6d each), the MLP's 4d hidden through c_fc, bias and 8 gelu ops (~40d): ~80d
//   forward, ×~3.5 with the backward's gradients and their temporaries → 300 per d.
// - per layer, head and position (attention scores B·H·T² are H·T per token): matmul, scale, mask,
//   softmax forward, 3× that backward → 16.
// - per vocabulary entry (logits B·T·V are V per token): logits, log-softmax (max, sub, exp, sum,
//   log), the targets' one-hot, their product, and the embedding gradient's one-hot → 10.
// Checked against tf.profile()'s peak bytes of real steps in test/hardening-memory.test.ts.
const FLOATS_PER_TOKEN_LAYER_DIM = 300;
const FLOATS_PER_TOKEN_LAYER_HEAD_POSITION = 16;
const FLOATS_PER_TOKEN_VOCAB = 10;
const FLOAT_BYTES = 4;

export interface TrainingShape {
  batchSize: number; // windows per micro-batch (training.batchSize)
  gradAccumSteps: number; // micro-batches per step (run one after another: activations do not add up)
  replicas: number; // data-parallel replicas (threads), each its own backend instance and weights
  ema: boolean;
}

export interface MemoryEstimate {
  /** The whole process: main instance plus every replica thread. */
  totalBytes: number;
  /** The largest single backend instance (the main thread's), for per-instance ceilings such as wasm's. */
  perInstanceBytes: number;
  breakdown: {
    parameters: number;
    gradients: number; // the step's summed gradients, plus the micro-batch being added in
    adamMoments: number;
    ema: number;
    snapshot: number; // the trainer's last good state: weights, moments and EMA copied each step
    activations: number; // one micro-batch's share on one replica, forward and backward
    replicaThreads: number; // each extra replica: weights, gradients, its activations
  };
}

export function parameterCountOf(cfg: GptConfig): number {
  let n = 0;
  for (const shape of weightShapes(cfg).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Activation bytes of a micro-batch of `windows` windows (see the constants above). */
export function activationBytes(cfg: GptConfig, windows: number): number {
  const perToken =
    cfg.nLayer *
      (FLOATS_PER_TOKEN_LAYER_DIM * cfg.dModel + FLOATS_PER_TOKEN_LAYER_HEAD_POSITION * cfg.nHead * cfg.seqLen) +
    FLOATS_PER_TOKEN_VOCAB * cfg.vocabSize;
  return windows * cfg.seqLen * perToken * FLOAT_BYTES;
}

/** Peak bytes of training `cfg` with `opts` (an upper estimate: measured peaks run 0.5–1× of it). */
export function estimateTrainingBytes(cfg: GptConfig, opts: TrainingShape): MemoryEstimate {
  const replicas = Math.max(1, opts.replicas);
  const p = parameterCountOf(cfg) * FLOAT_BYTES;
  const windowsPerReplica = Math.ceil(opts.batchSize / replicas);
  const activations = activationBytes(cfg, windowsPerReplica);
  const breakdown = {
    parameters: p,
    gradients: 2 * p,
    adamMoments: 2 * p,
    ema: opts.ema ? p : 0,
    snapshot: (opts.ema ? 4 : 3) * p,
    activations,
    replicaThreads: (replicas - 1) * (5 * p + activations), // weights, gradients, and its shared weight and gradient buffers
  };
  const perInstanceBytes =
    breakdown.parameters +
    breakdown.gradients +
    breakdown.adamMoments +
    breakdown.ema +
    breakdown.snapshot +
    breakdown.activations;
  return { totalBytes: perInstanceBytes + breakdown.replicaThreads, perInstanceBytes, breakdown };
}

/** Training needs more memory than the backend or machine has: no retry changes that. */
export class ModelTooLargeError extends Error {
  override name = 'ModelTooLargeError';
}

export interface MemoryLimits {
  /** Bytes this process may use (default: machineMemoryBytes()). */
  availableBytes: number;
  /** The TensorFlow.js backend running (tf.getBackend()): 'wasm' adds its per-instance ceiling. */
  backend: string;
}

/**
 * What this machine can give a run: HOST_MEMORY_FRACTION of the total (or of the cgroup limit, in a
 * container), and no more than 90% of what is free now.
 */
export function machineMemoryBytes(): number {
  const constrained = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0;
  const total = constrained && constrained > 0 ? Math.min(constrained, os.totalmem()) : os.totalmem();
  return Math.floor(Math.min(HOST_MEMORY_FRACTION * total, 0.9 * os.freemem() + process.memoryUsage().rss));
}

/**
 * Throws ModelTooLargeError when training `cfg` with `opts` would not fit `limits`, naming the
 * fields, the estimate and the limit. Returns the estimate otherwise. Call it before building weights.
 */
export function checkTrainingFits(cfg: GptConfig, opts: TrainingShape, limits: MemoryLimits): MemoryEstimate {
  const est = estimateTrainingBytes(cfg, opts);
  const problems: string[] = [];
  if (limits.backend === 'wasm' && est.perInstanceBytes > WASM_MAX_HEAP_BYTES) {
    problems.push(
      `needs ~${gib(est.perInstanceBytes)} in one wasm backend instance, whose heap holds at most ${gib(WASM_MAX_HEAP_BYTES)} (wasm32)`,
    );
  }
  if (est.totalBytes > limits.availableBytes) {
    problems.push(
      `needs ~${gib(est.totalBytes)} in all, more than the ${gib(limits.availableBytes)} this machine can give the worker`,
    );
  }
  if (problems.length === 0) return est;
  const b = est.breakdown;
  throw new ModelTooLargeError(
    `model.dModel=${cfg.dModel}, model.nLayer=${cfg.nLayer}, model.nHead=${cfg.nHead}, model.seqLen=${cfg.seqLen}, model.vocabSize=${cfg.vocabSize} ` +
      `with training.batchSize=${opts.batchSize} (gradAccumSteps ${opts.gradAccumSteps}, ${opts.replicas} replica${opts.replicas === 1 ? '' : 's'}${opts.ema ? ', EMA' : ''}) ` +
      `${problems.join('; and ')} ` +
      `(parameters ${gib(b.parameters)}, gradients ${gib(b.gradients)}, AdamW moments ${gib(b.adamMoments)}, EMA ${gib(b.ema)}, last-good snapshot ${gib(b.snapshot)}, ` +
      `activations per micro-batch ${gib(b.activations)}, extra replicas ${gib(b.replicaThreads)}). ` +
      `Lower training.batchSize (raise training.gradAccumSteps to keep the effective batch) or model.seqLen, model.dModel or model.nLayer` +
      (limits.backend === 'wasm' ? ', or run the gpu worker where @tensorflow/tfjs-node(-gpu) is installed' : ''),
  );
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
