// A model checkpoint on disk: model.safetensors (weights only: what the hash covers and validators
// load) plus manifest.json (config, step, losses, hash). Plain functions over files.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { weightsFrom, type GptConfig, type Weights } from './gpt';
import { readSafetensors, writeSafetensors, type StoredTensor } from './safetensors';

export const WEIGHTS_FILE = 'model.safetensors';
export const MANIFEST_FILE = 'manifest.json';

export interface Manifest {
  format: 'minerflow-checkpoint';
  version: 1;
  modelHash: string;
  model: GptConfig & { seed: number };
  tokenizer: 'bytes';
  step: number;
  trainLoss: number;
  heldOutLoss?: number;
  baselineLoss?: number;
  backend: string;
  runId: string; // the cycle that trained it
}

/** Writes the weights as safetensors (atomically) and returns the model hash computed while writing. */
export async function saveWeights(file: string, weights: Weights, metadata: Record<string, string> = {}): Promise<string> {
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
