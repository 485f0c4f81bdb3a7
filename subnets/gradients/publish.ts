// A Gradients submission: the trained model exported by the pool's trainer and uploaded to the
// validator's repo (`<namespace>/<expected_repo_name>`), with model_hash as G.O.D computes it
// (validator/utils/hash_verification.py calculate_model_hash at 3ee725a): sha256 over
// "<file>:<sha256 hex of its bytes>" for each weights or config file the repo holds, in sorted order.
// The validator recomputes it from the repo and drops a submission whose hash differs.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { EvalInput, ModelInput, TrainerInput } from '../../common/config';
import type { DatasetRef, StateRef } from '../../common/types';
import type { ModelHub } from '../../infra/hub/hub';
import type { CheckpointStore } from '../../infra/store/store';
import { MANIFEST_FILE, TOKENIZER_FILE, WEIGHTS_FILE, writeManifest, type Manifest } from '../../model/checkpoint';
import type { Trainer, TrainerHooks } from '../../trainers/trainer';
import type { MinerSubmission } from './protocol';

/** The files calculate_model_hash reads when present (the rest of a repo does not count). */
const GOD_HASHED_FILES = [
  'adapter_model.bin',
  'adapter_model.safetensors',
  'pytorch_model.bin',
  'pytorch_model.safetensors',
  'model.safetensors',
  'adapter_config.json',
  'config.json',
];
const GOD_HASHED_PATTERNS = [
  /^model-[^/]*\.safetensors$/,
  /^pytorch_model-[^/]*\.bin$/,
  /^pytorch_model-[^/]*\.safetensors$/,
  /^checkpoint\/last\.safetensors$/,
  /^checkpoint\/last-[^/]*\.safetensors$/,
  /^checkpoint\/checkpoint-[^/]*\.safetensors$/,
  /^last-[^/]*\.safetensors$/,
  /^diffusion_pytorch_model\.safetensors$/,
  /^unet\/diffusion_pytorch_model\.safetensors$/,
  /^vae\/diffusion_pytorch_model\.safetensors$/,
  /^text_encoder\/pytorch_model\.bin$/,
  /^text_encoder_2\/pytorch_model\.bin$/,
];

/** G.O.D's model_hash of a repo holding `files` (repo path → local file); null when none of them counts. */
export async function godModelHash(files: { path: string; file: string }[]): Promise<string | null> {
  const counted = files
    .filter((f) => GOD_HASHED_FILES.includes(f.path) || GOD_HASHED_PATTERNS.some((p) => p.test(f.path)))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const hasher = createHash('sha256');
  let any = false;
  for (const f of counted) {
    const { size } = await fs.stat(f.file);
    if (size === 0) continue; // G.O.D skips empty files
    const h = createHash('sha256');
    for await (const chunk of createReadStream(f.file) as AsyncIterable<Buffer>) h.update(chunk);
    hasher.update(`${f.path}:${h.digest('hex')}`, 'utf8');
    any = true;
  }
  return any ? hasher.digest('hex') : null;
}

export interface PublishInput {
  runId: string;
  taskId: string;
  repo: string; // <namespace>/<expected_repo_name>
  dataset: DatasetRef;
  trainer: TrainerInput;
  model: ModelInput;
  eval: EvalInput;
  state: StateRef | null; // the best trained state; null: submit the base model unchanged
  baseKey: string; // the base model in the store (training.initFrom)
  trainLoss: number | null;
}

export interface Published {
  submission: MinerSubmission;
  commitSha: string;
  heldOutLoss: number | null; // the exported model's on the job's held-out split (null for an untrained base)
  files: string[];
}

export async function publishSubmission(
  input: PublishInput,
  deps: { workDir: string; store: CheckpointStore; trainer: Trainer; hub: ModelHub; hooks: TrainerHooks },
): Promise<Published> {
  const stage = path.join(deps.workDir, 'submissions', input.taskId, input.state?.modelHash ?? 'base');
  await fs.mkdir(stage, { recursive: true });
  const files: { path: string; file: string }[] = [];
  let heldOutLoss: number | null = null;
  if (input.state) {
    const exported = await deps.trainer.exportModel(
      { dataset: input.dataset, trainer: input.trainer, model: input.model, eval: input.eval, state: input.state },
      deps.hooks,
    );
    heldOutLoss = exported.heldOutLoss;
    files.push({ path: WEIGHTS_FILE, file: exported.weightsFile });
    for (const [name, file] of Object.entries(exported.files)) files.push({ path: name, file });
    const manifest: Manifest = {
      format: 'minerflow-checkpoint',
      version: 1,
      modelHash: exported.modelHash,
      model: exported.model as unknown as Manifest['model'],
      tokenizer: exported.tokenizer,
      step: input.state.step,
      trainLoss: input.trainLoss ?? NaN,
      heldOutLoss: exported.heldOutLoss,
      baselineLoss: exported.baselineLoss,
      backend: 'export',
      round: 0,
      runId: input.runId, // no timestamps: a retried publish writes identical bytes and makes no new commit
      weights: exported.weights,
    };
    files.push({ path: MANIFEST_FILE, file: await writeManifest(stage, manifest) });
  } else {
    for (const name of [WEIGHTS_FILE, TOKENIZER_FILE, MANIFEST_FILE])
      if (await deps.store.exists(`${input.baseKey}/${name}`))
        files.push({ path: name, file: await deps.store.get(`${input.baseKey}/${name}`) });
  }
  deps.hooks.progress({ stage: 'uploading to the hub', repo: input.repo });
  const { commitSha } = await deps.hub.upload(
    input.repo,
    files,
    `minerflow: task ${input.taskId}, ${input.state ? `step ${input.state.step}` : 'base model'}`,
  );
  return {
    submission: { repo: input.repo, model_hash: await godModelHash(files) },
    commitSha,
    heldOutLoss,
    files: files.map((f) => f.path),
  };
}
