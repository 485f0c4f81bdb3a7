// Connito's checkpoint stage (gpu queue): the trainer evaluates its best state as a validator would
// and exports the weights (trainers/); this publishes them — model.safetensors + tokenizer.json +
// manifest.json under checkpoints/<model hash>/ in the store, content-addressed, never overwritten —
// and, with publish.repo, the expert group's shard (model_expgroup_{g}.pt) to the miner's Hugging
// Face repo, which is what Connito's validators download; the committed hash is then the shard's.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { log } from '@temporalio/activity';
import type { EvalInput, ModelInput, TrainerInput } from '../../common/config';
import type { DatasetRef, StateRef } from '../../common/types';
import { mapErrors } from '../../activities/errors';
import { withTrainerHooks } from '../../activities/train';
import type { CheckpointStore } from '../../infra/store/store';
import { MANIFEST_FILE, WEIGHTS_FILE, writeManifest, type Manifest } from '../../model/checkpoint';
import type { Trainer } from '../../trainers/trainer';
import { checkpointKey } from './commitments';
import type { ModelHub } from '../../infra/hub/hub';
import { readSafetensors } from '../../model/safetensors';
import type { PublishInput } from './config';
import { writeExpertShard } from './expert-shard';
import type { CheckpointRef } from './types';

export interface CheckpointActivityInput {
  runId: string;
  dataset: DatasetRef;
  state: StateRef; // the training state to publish (the cycle's best)
  trainLoss: number;
  backend: string;
  round: number; // the round it is trained for
  trainer?: TrainerInput; // absent in histories recorded before trainers were a port: the built-in one
  model: ModelInput;
  eval: EvalInput;
  publish?: PublishInput; // absent in histories recorded before the Hugging Face transport: the store only
}

export function makeCheckpoint(
  workDir: string,
  store: CheckpointStore,
  trainerFor: (t: TrainerInput) => Trainer,
  hub: () => ModelHub,
) {
  return async function checkpoint(input: CheckpointActivityInput): Promise<CheckpointRef> {
    // The keep-alive covers evaluation and the uploads: a large checkpoint takes a while to publish.
    return mapErrors(() =>
      withTrainerHooks(async (hooks) => {
        const trainer = trainerFor(input.trainer ?? { kind: 'tfjs' });
        const exported = await trainer.exportModel(
          {
            dataset: input.dataset,
            trainer: input.trainer ?? { kind: 'tfjs' },
            model: input.model,
            eval: input.eval,
            state: input.state,
          },
          hooks,
        );
        // With a repo, the committed hash is the expert shard's (what Connito's validators verify).
        const stage = path.join(workDir, 'checkpoints', exported.modelHash);
        await fs.mkdir(stage, { recursive: true });
        const shard = input.publish?.repo
          ? await writeExpertShard(stage, (await readSafetensors(exported.weightsFile)).tensors, {
              group: input.publish.expertGroup,
              groups: { count: input.publish.expertGroups },
              dtype: input.publish.dtype,
            })
          : undefined;
        const hash = shard?.hash ?? exported.modelHash;
        const manifest: Manifest = {
          format: 'minerflow-checkpoint',
          version: 1,
          modelHash: exported.modelHash, // the weights' own hash; the key and the commit carry the shard's when there is one
          model: exported.model as unknown as Manifest['model'], // the built-in trainer's architecture (what the devnet's validator loads)
          tokenizer: exported.tokenizer,
          step: input.state.step,
          trainLoss: input.trainLoss,
          heldOutLoss: exported.heldOutLoss,
          baselineLoss: exported.baselineLoss,
          backend: input.backend,
          round: input.round,
          runId: input.runId, // no timestamps: a retried publish must write identical bytes
        };
        const manifestFile = await writeManifest(stage, manifest);
        const key = checkpointKey(hash);
        hooks.progress({ stage: 'publishing', hash });
        // Weights and companions first, manifest last: a manifest's presence means the checkpoint is
        // complete. The hash covers the weights only (Connito's rule); the tokenizer travels with
        // them because a validator cannot turn text into this model's ids without it. Identical
        // weights published before (training is deterministic) are the same checkpoint, reused as is.
        await store.put(`${key}/${WEIGHTS_FILE}`, exported.weightsFile, { immutable: true });
        for (const [name, file] of Object.entries(exported.files))
          await store.put(`${key}/${name}`, file, { immutable: true });
        if (await store.exists(`${key}/${MANIFEST_FILE}`))
          log.info('checkpoint already published; reusing it', { hash });
        else await store.put(`${key}/${MANIFEST_FILE}`, manifestFile, { immutable: true });
        let published: CheckpointRef['hub'];
        if (shard && input.publish?.repo) {
          // One commit per shard; the same bytes again (a retried activity) make no new commit.
          hooks.progress({ stage: 'uploading to the hub', repo: input.publish.repo });
          const file = path.basename(shard.file);
          const { commitSha } = await hub().upload(
            input.publish.repo,
            [{ path: file, file: shard.file }],
            `minerflow: round ${input.round}, expert group ${input.publish.expertGroup}, model hash ${hash}`,
          );
          published = {
            repo: input.publish.repo,
            revision: commitSha.slice(0, 7),
            commitSha,
            file,
            expertGroup: input.publish.expertGroup,
          };
          log.info('expert shard published', { repo: input.publish.repo, commitSha, hash, tensors: shard.tensors });
        }
        return {
          hub: published,
          hash,
          key,
          location: store.uri,
          heldOutLoss: exported.heldOutLoss,
          heldOutBitsPerByte: exported.heldOutBitsPerByte,
          tokenizer: exported.tokenizer,
          vocabSize: exported.vocabSize,
          baselineLoss: exported.baselineLoss,
          trainLoss: input.trainLoss,
          steps: input.state.step,
          round: input.round,
          weights: exported.weights,
          rawHeldOutLoss: exported.rawHeldOutLoss,
          emaHeldOutLoss: exported.emaHeldOutLoss,
        };
      }),
    );
  };
}
