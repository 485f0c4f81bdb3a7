// A model checkpoint on disk: model.safetensors (weights only: what the hash covers and validators
// load), tokenizer.json (what the token ids mean) plus manifest.json (config, step, losses, hash).
// Plain functions over files.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { weightsFrom, type GptConfig, type Weights } from './gpt';
import type { AdamW } from './optimizer';
import { ByteTokenizer, loadTokenizer, saveTokenizer, type Tokenizer, type TokenizerType } from './tokenizer';
import type { TrainerCounters } from './trainer';
import { readSafetensors, writeSafetensors, type StoredTensor } from './safetensors';

export const WEIGHTS_FILE = 'model.safetensors';
export const MANIFEST_FILE = 'manifest.json';
/**
 * The tokenizer travels beside the weights but outside the model hash, which covers
 * model.safetensors only (Connito's rule): a validator needs it to turn its held-out text into the
 * ids the model was trained on, and its vocabulary is pinned by the weights' embedding shape.
 */
export const TOKENIZER_FILE = 'tokenizer.json';

export interface Manifest {
  format: 'minerflow-checkpoint';
  version: 1;
  modelHash: string;
  model: GptConfig & { seed: number };
  tokenizer: TokenizerType; // tokenizer.json beside the weights says which merges (absent: bytes)
  step: number;
  trainLoss: number;
  heldOutLoss?: number;
  baselineLoss?: number;
  backend: string;
  runId: string; // the cycle that trained it
  round: number; // the chain round it was trained for
  weights?: 'raw' | 'ema'; // which of the state's weights these are
}

/** Writes the weights as safetensors (atomically) and returns the model hash computed while writing. */
export async function saveWeights(
  file: string,
  weights: Weights,
  metadata: Record<string, string> = {},
): Promise<string> {
  const tensors = new Map<string, StoredTensor>();
  for (const [name, w] of weights) tensors.set(name, { shape: w.shape, data: w.dataSync() as Float32Array });
  return writeSafetensors(file, tensors, metadata);
}

export async function loadWeights(file: string, cfg: GptConfig): Promise<Weights> {
  const { tensors } = await readSafetensors(file);
  return weightsFrom(cfg, tensors);
}

export async function writeManifest(dir: string, manifest: Manifest): Promise<string> {
  const file = path.join(dir, MANIFEST_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n');
  await fs.rename(tmp, file);
  return file;
}

export async function readManifest(file: string): Promise<Manifest> {
  const m = JSON.parse(await fs.readFile(file, 'utf8')) as Manifest;
  if (m.format !== 'minerflow-checkpoint') throw new Error(`${file} is not a minerflow checkpoint manifest`);
  return m;
}

// --- Training state: everything needed to continue training exactly where it stopped. ---------
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const EMA_FILE = 'ema.safetensors';
export const STATE_FILE = 'state.json';

export interface TrainingStateMeta {
  counters: TrainerCounters;
  modelHash: string;
  trainLoss: number;
  heldOutLoss?: number;
  backend: string;
}

/** Writes model.safetensors (weights), optimizer.safetensors (AdamW moments), tokenizer.json and state.json into `dir`. */
export async function saveTrainingState(
  dir: string,
  weights: Weights,
  optimizer: AdamW,
  meta: Omit<TrainingStateMeta, 'modelHash'>,
  ema?: Weights,
  tokenizer?: Tokenizer,
): Promise<TrainingStateMeta> {
  if (tokenizer) await saveTokenizer(path.join(dir, TOKENIZER_FILE), tokenizer);
  const modelHash = await saveWeights(path.join(dir, WEIGHTS_FILE), weights, { format: 'pt' });
  if (ema) await saveWeights(path.join(dir, EMA_FILE), ema, { format: 'pt' });
  // The optimizer's own tensors: all of `weights` when pre-training, only the trained ones when fine-tuning.
  const moments = new Map<string, StoredTensor>();
  for (const [name, m] of optimizer.m) {
    moments.set(`m.${name}`, { shape: m.shape, data: m.dataSync() as Float32Array });
    moments.set(`v.${name}`, { shape: m.shape, data: optimizer.v.get(name)!.dataSync() as Float32Array });
  }
  await writeSafetensors(path.join(dir, OPTIMIZER_FILE), moments);
  const full = { ...meta, modelHash };
  const tmp = path.join(dir, `${STATE_FILE}.tmp-${process.pid}`);
  await fs.writeFile(tmp, JSON.stringify(full, null, 2) + '\n');
  await fs.rename(tmp, path.join(dir, STATE_FILE));
  return full;
}

/** The tokenizer saved in a state or checkpoint folder; folders written before tokenizers were saved hold byte-level models. */
export async function loadTokenizerIn(dir: string): Promise<Tokenizer> {
  const file = path.join(dir, TOKENIZER_FILE);
  if (
    !(await fs.access(file).then(
      () => true,
      () => false,
    ))
  )
    return new ByteTokenizer();
  return loadTokenizer(file);
}

/** Restores EMA weights saved by saveTrainingState into `shadow`. */
export async function loadInto(file: string, target: Weights): Promise<void> {
  const { tensors } = await readSafetensors(file);
  tf.tidy(() => {
    for (const [name, v] of target) {
      const t = tensors.get(name);
      if (!t) throw new Error(`${file} has no tensor '${name}'`);
      v.assign(tf.tensor(t.data, t.shape));
    }
  });
}

/** Restores optimizer moments saved by saveTrainingState into `optimizer`. */
export async function loadOptimizerMoments(file: string, optimizer: AdamW): Promise<void> {
  const { tensors } = await readSafetensors(file);
  for (const [name, m] of optimizer.m) {
    const sm = tensors.get(`m.${name}`);
    const sv = tensors.get(`v.${name}`);
    if (!sm || !sv) throw new Error(`${file} has no moments for '${name}'`);
    tf.tidy(() => {
      m.assign(tf.tensor(sm.data, sm.shape));
      optimizer.v.get(name)!.assign(tf.tensor(sv.data, sv.shape));
    });
  }
}
