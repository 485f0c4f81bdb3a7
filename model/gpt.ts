// A decoder-only transformer language model (GPT-2 shape, pre-norm), in the spirit of nanoGPT's
// model.py: a config, the weights by name, and a forward pass read top to bottom.
// Weights are [in, out] matrices; names follow nanoGPT so checkpoints read naturally.
// Optionally, some blocks' MLP is a mixture of experts (routing in moe.ts).
import * as tf from '@tensorflow/tfjs-core';
import { isMoeLayer, moeConfigProblems, route, type MoeConfig } from './moe';
import { embed, matmul, swapLast } from './ops';
import { Rng } from './rng';

export type { MoeConfig } from './moe';

export interface GptConfig {
  vocabSize: number;
  seqLen: number; // context length (block size)
  dModel: number;
  nLayer: number;
  nHead: number;
  moe?: MoeConfig | null; // absent or null: every block has a dense MLP
}

/** Every trainable tensor by name. Names sort into the checkpoint's (and the model hash's) order. */
export type Weights = Map<string, tf.Variable>;

/**
 * LoRA adapters by the name of the weight matrix they adapt (e.g. 'h.0.attn.c_attn.weight'):
 * that layer computes x·W + scale·(x·A)·B. Built and merged in finetune/lora.ts.
 */
export type Adapters = Map<string, { a: tf.Tensor; b: tf.Tensor; scale: number }>;

/**
 * A variable holding `t`, which it takes over. tf.variable shares its initial tensor's buffer and
 * leaves that tensor alive: disposing the variable alone would keep the buffer for good.
 */
export function variableOf(t: tf.Tensor, trainable = true): tf.Variable {
  const v = tf.variable(t, trainable);
  t.dispose();
  return v;
}

export function parameterCount(weights: Weights): number {
  let n = 0;
  for (const w of weights.values()) n += w.size;
  return n;
}

/** Shapes of every weight, so init and checkpoint loading agree on what a model is. */
export function weightShapes(cfg: GptConfig): Map<string, number[]> {
  const d = cfg.dModel;
  const shapes = new Map<string, number[]>([
    ['wte', [cfg.vocabSize, d]], // token embedding, tied with the output head
    ['wpe', [cfg.seqLen, d]], // learned positions
    ['ln_f.weight', [d]],
    ['ln_f.bias', [d]],
  ]);
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `h.${l}.`;
    shapes.set(p + 'ln_1.weight', [d]).set(p + 'ln_1.bias', [d]);
    shapes.set(p + 'attn.c_attn.weight', [d, 3 * d]).set(p + 'attn.c_attn.bias', [3 * d]);
    shapes.set(p + 'attn.c_proj.weight', [d, d]).set(p + 'attn.c_proj.bias', [d]);
    shapes.set(p + 'ln_2.weight', [d]).set(p + 'ln_2.bias', [d]);
    const mlpShapes = (q: string) => {
      shapes.set(q + 'c_fc.weight', [d, 4 * d]).set(q + 'c_fc.bias', [4 * d]);
      shapes.set(q + 'c_proj.weight', [4 * d, d]).set(q + 'c_proj.bias', [d]);
    };
    if (isMoeLayer(cfg.moe, l)) {
      shapes.set(p + 'moe.router.weight', [d, cfg.moe!.experts]); // no bias, as Switch and Mixtral
      for (let e = 0; e < cfg.moe!.experts; e++) mlpShapes(`${p}moe.experts.${e}.`);
    } else mlpShapes(p + 'mlp.');
  }
  return shapes;
}

/** GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2·nLayer). */
export function initWeights(cfg: GptConfig, seed: number): Weights {
  validateConfig(cfg);
  const rng = new Rng(seed);
  const weights: Weights = new Map();
  for (const [name, shape] of [...weightShapes(cfg)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight') data.fill(1);
    else if (!name.endsWith('.bias')) {
      const std = name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * cfg.nLayer) : 0.02;
      for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
    }
    weights.set(name, variableOf(tf.tensor(data, shape)));
  }
  return weights;
}

/** A checkpoint that does not fit the model config (a missing tensor, a wrong shape): retrying cannot help. */
export class CheckpointShapeError extends Error {
  override name = 'CheckpointShapeError';
}

/** Builds weights from stored arrays (a checkpoint), checking every name and shape. */
export function weightsFrom(cfg: GptConfig, arrays: Map<string, { shape: number[]; data: Float32Array }>): Weights {
  validateConfig(cfg);
  const weights: Weights = new Map();
  for (const [name, shape] of [...weightShapes(cfg)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const a = arrays.get(name);
    const problem = !a
      ? `checkpoint is missing tensor '${name}'`
      : a.shape.join('x') !== shape.join('x')
        ? `checkpoint tensor '${name}' has shape [${a.shape}] but the config needs [${shape}]`
        : undefined;
    if (problem || !a) {
      disposeWeights(weights); // the ones built so far
      throw new CheckpointShapeError(`${problem}; is model.* the config the checkpoint was trained with?`);
    }
    weights.set(name, variableOf(tf.tensor(a.data, shape)));
  }
  return weights;
}

export function validateConfig(cfg: GptConfig): void {
  if (cfg.dModel % cfg.nHead !== 0) {
    throw new Error(`model.dModel (${cfg.dModel}) must be divisible by model.nHead (${cfg.nHead})`);
  }
  if (cfg.moe) {
    const problems = moeConfigProblems(cfg.moe, cfg.nLayer);
    if (problems.length) throw new Error(problems.join('; '));
  }
}

export function disposeWeights(weights: Weights): void {
  for (const w of weights.values()) w.dispose();
}

function layerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b) as tf.Tensor2D;
}

/** The affine layer `name` (its .weight and .bias), plus its LoRA adapter's low-rank path if it has one. */
function linear(x: tf.Tensor2D, w: Weights, name: string, lora?: Adapters): tf.Tensor2D {
  const y = tf.add(matmul(x, w.get(name + '.weight')!), w.get(name + '.bias')!) as tf.Tensor2D;
  const adapter = lora?.get(name + '.weight');
  if (!adapter) return y;
  return tf.add(y, tf.mul(matmul(matmul(x, adapter.a), adapter.b), adapter.scale)) as tf.Tensor2D;
}

function gelu(x: tf.Tensor): tf.Tensor {
  // tanh approximation, as GPT-2
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** Causal self-attention over x [B·T, d]; returns [B·T, d]. */
function attention(
  w: Weights,
  p: string,
  x: tf.Tensor2D,
  cfg: GptConfig,
  B: number,
  T: number,
  mask: tf.Tensor,
  lora?: Adapters,
): tf.Tensor2D {
  const d = cfg.dModel;
  const H = cfg.nHead;
  const hd = d / H;
  const qkv = linear(x, w, p + 'attn.c_attn', lora);
  const heads = (part: number) =>
    tf.reshape(tf.transpose(tf.reshape(tf.slice(qkv, [0, part * d], [B * T, d]), [B, T, H, hd]), [0, 2, 1, 3]), [
      B * H,
      T,
      hd,
    ]);
  const q = heads(0);
  const k = heads(1);
  const v = heads(2);
  const scores = tf.add(tf.mul(matmul(q, swapLast(k)), 1 / Math.sqrt(hd)), mask);
  const y = matmul(tf.softmax(scores), v); // [B·H, T, hd]
  const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, hd]), [0, 2, 1, 3]), [B * T, d]) as tf.Tensor2D;
  return linear(merged, w, p + 'attn.c_proj', lora);
}

/** GPT-2 MLP (c_fc, gelu, c_proj) with the weights under `p`. */
function mlp(w: Weights, p: string, x: tf.Tensor2D, lora?: Adapters): tf.Tensor2D {
  const hidden = gelu(linear(x, w, p + 'c_fc', lora)) as tf.Tensor2D;
  return linear(hidden, w, p + 'c_proj', lora);
}

/**
 * Mixture-of-experts feed-forward over x [N, d]: the gate-weighted sum of the experts' MLPs. Every
 * expert runs on every token (E× a dense MLP's work) because picking rows out needs tf.gather,
 * whose gradient the wasm backend lacks; a token's gate is 0 for experts that do not serve it.
 */
function moeMlp(
  w: Weights,
  p: string,
  x: tf.Tensor2D,
  moe: MoeConfig,
  lora?: Adapters,
): { y: tf.Tensor2D; aux: tf.Scalar; load: tf.Tensor1D } {
  const N = x.shape[0];
  const { gates, chosen, aux } = route(tf.softmax(matmul(x, w.get(p + 'moe.router.weight')!)), moe);
  let y = tf.zerosLike(x);
  for (let e = 0; e < moe.experts; e++) {
    y = tf.add(y, tf.mul(tf.slice(gates, [0, e], [N, 1]), mlp(w, `${p}moe.experts.${e}.`, x, lora)));
  }
  return { y, aux, load: tf.sum(chosen, 0) };
}

export interface ForwardResult {
  logits: tf.Tensor2D; // [B·T, vocab]
  aux: tf.Scalar; // load-balancing loss averaged over the MoE layers (0 for a dense model)
  expertLoad: tf.Tensor1D[]; // per MoE layer: tokens that chose each expert (before capacity)
}

/** Next-token logits [B·T, vocab] for token ids [B, T] (int32). */
export function forward(w: Weights, cfg: GptConfig, ids: tf.Tensor2D, lora?: Adapters): tf.Tensor2D {
  return tf.tidy(() => forwardWithAux(w, cfg, ids, lora).logits);
}

/** The forward pass, with what the MoE layers add: their auxiliary loss and expert loads. `lora`: adapters on the linear layers. */
export function forwardWithAux(w: Weights, cfg: GptConfig, ids: tf.Tensor2D, lora?: Adapters): ForwardResult {
  const [B, T] = ids.shape;
  if (T > cfg.seqLen) throw new Error(`sequence of ${T} tokens is longer than model.seqLen ${cfg.seqLen}`);
  const tok = tf.reshape(embed(w.get('wte')! as tf.Tensor2D, tf.reshape(ids, [B * T]) as tf.Tensor1D), [
    B,
    T,
    cfg.dModel,
  ]);
  const pos = tf.slice(w.get('wpe')!, [0, 0], [T, cfg.dModel]);
  let x = tf.reshape(tf.add(tok, pos), [B * T, cfg.dModel]) as tf.Tensor2D;
  const mask = causalMask(T);
  const auxes: tf.Scalar[] = [];
  const expertLoad: tf.Tensor1D[] = [];
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `h.${l}.`;
    const a = layerNorm(x, w.get(p + 'ln_1.weight')!, w.get(p + 'ln_1.bias')!);
    x = tf.add(x, attention(w, p, a, cfg, B, T, mask, lora)) as tf.Tensor2D;
    const m = layerNorm(x, w.get(p + 'ln_2.weight')!, w.get(p + 'ln_2.bias')!);
    if (isMoeLayer(cfg.moe, l)) {
      const { y, aux, load } = moeMlp(w, p, m, cfg.moe!, lora);
      x = tf.add(x, y) as tf.Tensor2D;
      auxes.push(aux);
      expertLoad.push(load);
    } else x = tf.add(x, mlp(w, p + 'mlp.', m, lora)) as tf.Tensor2D;
  }
  x = layerNorm(x, w.get('ln_f.weight')!, w.get('ln_f.bias')!);
  const logits = matmul(x, tf.transpose(w.get('wte')!)); // tied output head
  const aux = auxes.length ? (tf.div(tf.addN(auxes), auxes.length) as tf.Scalar) : tf.scalar(0);
  return { logits, aux, expertLoad };
}

/**
 * What training minimises for one batch: token cross-entropy plus, for mixture-of-experts layers,
 * the auxiliary load-balancing loss (zero for a dense model). Evaluation uses `ce` alone.
 */
export function trainingLoss(
  w: Weights,
  cfg: GptConfig,
  ids: tf.Tensor2D,
  targets: tf.Tensor1D,
): { total: tf.Scalar; ce: tf.Scalar; aux: tf.Scalar } {
  const { logits, aux } = forwardWithAux(w, cfg, ids);
  const ce = crossEntropy(logits, targets);
  const total = cfg.moe ? (tf.add(ce, tf.mul(cfg.moe.auxLossWeight, aux)) as tf.Scalar) : ce;
  return { total, ce, aux };
}

/** Mean token cross-entropy (nats) of logits [N, V] against targets [N] (int32). */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  const picked = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(targets, logits.shape[1]), 'float32')), -1);
  return tf.neg(tf.mean(picked)) as tf.Scalar;
}

/** [T, T] additive mask: 0 on and below the diagonal, -1e9 above (no peeking at the future). */
function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}
