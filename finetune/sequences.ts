// Fine-tuning examples as token sequences for the base model: each part tokenized on its own with
// the base's tokenizer (so the boundary between prompt and response is exact), concatenated, and a
// flag per token saying whether the loss counts it. Then fitted into the model's context.
import * as tf from '@tensorflow/tfjs-core';
import type { Tokenizer } from '../model/tokenizer';
import type { PreferenceExample, SftExample } from './examples';

/** Up to seqLen + 1 tokens; `train[i]` says whether predicting token i counts (train[0] is never used). */
export interface Sequence {
  ids: number[];
  train: boolean[];
}

export interface PreferenceSequences {
  chosen: Sequence;
  rejected: Sequence;
}

/**
 * Fits a sequence into seqLen + 1 tokens (seqLen inputs, seqLen targets). Truncation keeps the
 * response: prompt tokens are dropped from the left, but never past the token just before the first
 * trained one (it is the input that predicts it); a response still too long loses its tail.
 * Returns null when no trained token is left (an empty response).
 */
export function fitSequence(tokens: number[], train: boolean[], seqLen: number): Sequence | null {
  const firstTrained = train.findIndex((t, i) => t && i > 0);
  if (firstTrained < 0) return null;
  const start = Math.max(0, Math.min(tokens.length - (seqLen + 1), firstTrained - 1));
  return { ids: tokens.slice(start, start + seqLen + 1), train: train.slice(start, start + seqLen + 1) };
}

function tokenize(parts: { text: string; train: boolean }[], tokenizer: Tokenizer) {
  const ids: number[] = [];
  const train: boolean[] = [];
  for (const p of parts) {
    for (const id of tokenizer.encode(p.text)) {
      ids.push(id);
      train.push(p.train);
    }
  }
  return { ids, train };
}

export function encodeSft(ex: SftExample, tokenizer: Tokenizer, seqLen: number): Sequence | null {
  const { ids, train } = tokenize(ex.parts, tokenizer);
  return fitSequence(ids, train, seqLen);
}

export function encodePreference(
  ex: PreferenceExample,
  tokenizer: Tokenizer,
  seqLen: number,
): PreferenceSequences | null {
  const side = (response: string) => {
    const { ids, train } = tokenize(
      [
        { text: ex.prompt, train: false },
        { text: response, train: true },
      ],
      tokenizer,
    );
    return fitSequence(ids, train, seqLen);
  };
  const chosen = side(ex.chosen);
  const rejected = side(ex.rejected);
  return chosen && rejected ? { chosen, rejected } : null;
}

/** Where a line of a dataset's .jsonl is not the example shape the objective needs. */
export class ExampleFormatError extends Error {
  override name = 'ExampleFormatError';
}

/** Checks one parsed .jsonl line against the shape of `kind`, naming the line and field that is wrong. */
export function checkExample(kind: 'sft' | 'preference', x: unknown, where: string): SftExample | PreferenceExample {
  const o = (x ?? {}) as Record<string, unknown>;
  if (kind === 'sft') {
    const parts = o.parts;
    if (!Array.isArray(parts) || parts.some((p) => typeof p?.text !== 'string' || typeof p?.train !== 'boolean'))
      throw new ExampleFormatError(`${where}: an sft example needs parts: [{text: string, train: boolean}, …]`);
    return { parts } as SftExample;
  }
  for (const f of ['prompt', 'chosen', 'rejected'])
    if (typeof o[f] !== 'string') throw new ExampleFormatError(`${where}: a preference example needs ${f}: string`);
  return o as unknown as PreferenceExample;
}

/** Inputs [B, T], targets [B·T] and the loss mask [B·T] (1 = a trained target) for sequences, right-padded with token 0. */
export function sequenceTensors(
  seqs: Sequence[],
  seqLen: number,
): { ids: tf.Tensor2D; targets: tf.Tensor1D; mask: tf.Tensor1D } {
  // A batch is as long as its longest sequence: causal attention makes the padding invisible to the real tokens.
  const T = Math.max(1, ...seqs.map((s) => s.ids.length - 1));
  if (T > seqLen) throw new Error(`a sequence of ${T + 1} tokens does not fit model.seqLen ${seqLen}`);
  const ids = new Int32Array(seqs.length * T);
  const targets = new Int32Array(seqs.length * T);
  const mask = new Float32Array(seqs.length * T);
  seqs.forEach((s, b) => {
    for (let t = 0; t + 1 < s.ids.length; t++) {
      ids[b * T + t] = s.ids[t];
      targets[b * T + t] = s.ids[t + 1];
      mask[b * T + t] = s.train[t + 1] ? 1 : 0;
    }
  });
  return {
    ids: tf.tensor2d(ids, [seqs.length, T], 'int32'),
    targets: tf.tensor1d(targets, 'int32'),
    mask: tf.tensor1d(mask, 'float32'),
  };
}
