// Connito's Distribute stage (control queue): before training for round r, find the global model
// the validators published after round r − 1 (distribute.ts chooses it from the chain), download
// its files from their Hugging Face repo at the committed revision, check Connito's hash of the
// expert shard against the committed one, and put the whole model in the store as a warm start
// (training.initFrom). Nothing to distribute (round 0, no validator, another expert group) is a
// normal answer with its reason, not a failure: the round then trains from the cycle's own start.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { heartbeat, log } from '@temporalio/activity';
import { mapErrors } from '../../activities/errors';
import type { Chain } from '../../infra/chain/chain';
import { HubNotFoundError, type ModelHub } from '../../infra/hub/hub';
import type { CheckpointStore } from '../../infra/store/store';
import { TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { writeSafetensors, type StoredTensor } from '../../model/safetensors';
import type { MinerInput, PublishInput } from './config';
import { SHARED_FILE } from './devnet-global';
import { chooseGlobalModel, type Excluded } from './distribute';
import type { DistributeReport } from './types';
import { ourName, readExpertShard, shardFileName } from './expert-shard';
import { cycleLength, phaseWindow } from './phases';
import { readStateDict, toFloat32 } from './torch-pt';

export interface DistributeInput {
  round: number; // the round about to be trained
  miner: MinerInput;
  publish: PublishInput;
}

/** Connito's version window: global versions from 1.5 cycles before the last MinerCommit1 up to it. */
const VERSION_RANGE_CYCLES = 1.5;

export function makeDistribute(
  workDir: string,
  store: CheckpointStore,
  chain: () => Promise<Chain>,
  hub: () => ModelHub,
) {
  return async function distribute(input: DistributeInput): Promise<DistributeReport> {
    return mapErrors(async () => {
      const none = (reason: string, excluded: Excluded[] = []): DistributeReport => ({
        status: 'none',
        reason,
        excluded,
      });
      if (input.round < 1) return none(`round ${input.round} has no earlier round to take a global model from`);
      const c = await chain();
      const s = await c.schedule();
      const last = input.round - 1;
      // Each validator commitment as it stood when its phase ended (a hotkey holds one at a time).
      const signedAt = phaseWindow(s, last, 'ValidatorCommit1').end;
      const locatedAt = phaseWindow(s, last, 'ValidatorCommit2').end;
      // Round r starts when round r − 1's ValidatorCommit2 ends (its Distribute phase): wait for it.
      let head = s.block;
      const waitUntil = Date.now() + (locatedAt - head) * s.blockMs * 2 + 30_000;
      while (head < locatedAt) {
        if (Date.now() > waitUntil)
          return none(
            `round ${last}'s validator commitments complete at block ${locatedAt}; the chain is still at ${head}`,
          );
        heartbeat({ waitingForBlock: locatedAt, block: head });
        await new Promise((r) => setTimeout(r, Math.max(50, s.blockMs / 2)));
        head = await c.blockNumber();
      }
      heartbeat({ reading: 'validator commitments', signedAt, locatedAt });
      const netuid = input.miner.netuid;
      const max = phaseWindow(s, last, 'MinerCommit1').start;
      const { model, excluded } = chooseGlobalModel({
        signed: await c.commitments(netuid, signedAt),
        located: await c.commitments(netuid, locatedAt),
        neurons: await c.neurons(netuid, locatedAt),
        whitelist: c.validatorWhitelist ? await c.validatorWhitelist() : [],
        block: locatedAt,
        cycleLength: cycleLength(s.phases),
        versions: { min: max - Math.floor(cycleLength(s.phases) * VERSION_RANGE_CYCLES), max },
      });
      if (!model) return none(`no validator published a usable global model after round ${last}`, excluded);
      const group = input.publish.expertGroup;
      if ((model.expertGroup ?? 0) !== group)
        return none(
          `the validators' global model is for expert group ${model.expertGroup}, this hotkey trains ${group}`,
          excluded,
        );

      const key = `global/${model.hash}`;
      if (!(await store.exists(`${key}/${WEIGHTS_FILE}`))) {
        const dir = path.join(workDir, 'global', model.hash);
        await fs.mkdir(dir, { recursive: true });
        const fetch = async (file: string) => {
          heartbeat({ downloading: file, repo: model.repo, revision: model.revision });
          await hub().download(model.repo, model.revision, file, path.join(dir, file));
          return path.join(dir, file);
        };
        const shard = await readExpertShard(await fetch(shardFileName(group)));
        if (shard.hash !== model.hash)
          throw new DistributeError(
            `${model.repo}@${model.revision}/${shardFileName(group)} hashes to ${shard.hash}, not the committed ${model.hash}`,
          );
        const shared = await readStateDict(await fetch(SHARED_FILE));
        const weights = new Map<string, StoredTensor>(
          [...shared].map(([name, t]) => [name, { shape: t.shape, data: toFloat32(t) }]),
        );
        // The whole model: the shared file holds every tensor but this group's experts, the shard those.
        const full = new Map(weights);
        for (const [name, t] of shard.tensors) full.set(ourName(name), { shape: t.shape, data: toFloat32(t) });
        await writeSafetensors(path.join(dir, WEIGHTS_FILE), full);
        const tokenizer = await fetch(TOKENIZER_FILE).catch((err: Error) => {
          if (err instanceof HubNotFoundError) return undefined; // a byte-level model needs none
          throw err;
        });
        if (tokenizer) await store.put(`${key}/${TOKENIZER_FILE}`, tokenizer, { immutable: true });
        await store.put(`${key}/${WEIGHTS_FILE}`, path.join(dir, WEIGHTS_FILE), { immutable: true });
        await fs.rm(dir, { recursive: true, force: true });
      }
      log.info('distribute: warm start from the global model', { hash: model.hash, v: model.globalVer, key });
      return {
        status: 'warm',
        hash: model.hash,
        globalVer: model.globalVer,
        repo: model.repo,
        revision: model.revision,
        initFrom: key,
        validators: model.validators.map((v) => v.hotkey),
      };
    });
  };
}

/** A global model that does not check out: its files differ from what the validators committed. */
export class DistributeError extends Error {
  override name = 'DistributeError';
}
