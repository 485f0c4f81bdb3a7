// Held-out evaluation exactly as a validator does it: mean token cross-entropy over fixed,
// non-overlapping windows of the held-out stream, in order (no sampling, so it is deterministic).
import * as tf from '@tensorflow/tfjs-core';
import { crossEntropy, forward, type GptConfig, type Weights } from './gpt';
import type { TokenIds } from './tokenizer';

export interface EvalOptions {
  maxTokens: number; // cap on scored tokens, so evaluation time is bounded
  batchSize: number;
}

export interface EvalResult {
  loss: number; // nats per token
  perplexity: number;
  tokens: number;
}

export function evaluate(weights: Weights, cfg: GptConfig, tokens: TokenIds, opts: EvalOptions): EvalResult {
  const T = cfg.seqLen;
  const windows: number[] = [];
  for (let start = 0; start + T + 1 <= tokens.length && (windows.length + 1) * T <= opts.maxTokens; start += T) {
    windows.push(start);
  }
  if (windows.length === 0) {
    throw new Error(`held-out data has ${tokens.length} tokens; at least ${T + 1} (model.seqLen + 1) are needed`);
  }
  let sum = 0;
  for (let i = 0; i < windows.length; i += opts.batchSize) {
    const batch = windows.slice(i, i + opts.batchSize);
    const { ids, targets } = windowsToTensors(tokens, batch, T);
    const loss = tf.tidy(() => crossEntropy(forward(weights, cfg, ids), targets).dataSync()[0]);
    ids.dispose();
    targets.dispose();
    sum += loss * batch.length;
  }
  const loss = sum / windows.length;
  return { loss, perplexity: Math.exp(loss), tokens: windows.length * T };
}

/** Inputs [B, T] and next-token targets [B·T] for windows starting at `starts`. */
export function windowsToTensors(
  tokens: TokenIds,
  starts: number[],
  T: number,
): { ids: tf.Tensor2D; targets: tf.Tensor1D } {
  const ids = new Int32Array(starts.length * T);
  const targets = new Int32Array(starts.length * T);
  starts.forEach((s, b) => {
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = tokens[s + t];
      targets[b * T + t] = tokens[s + t + 1];
    }
  });
  return { ids: tf.tensor2d(ids, [starts.length, T], 'int32'), targets: tf.tensor1d(targets, 'int32') };
}
