// The devnet validator's global model, published the way Connito's validators publish theirs, so
// the next round's miners have something to Distribute: after scoring a round it takes the best
// miner's expert shard (fetched from the miner's repo at the committed revision), uploads it to its
// own repo with the rest of that miner's model (model_shared.pt: every tensor not in the shard) and tokenizer, then commits
// {"m": signature of the hash} inside ValidatorCommit1 and {"h","v","e","r","rv"} inside
// ValidatorCommit2, signed by its own registered, whitelisted hotkey. v is the round's
// MinerCommit1 start block, as Connito's validators set global_ver.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { Chain } from '../../infra/chain/chain';
import type { ModelHub } from '../../infra/hub/hub';
import type { CheckpointStore } from '../../infra/store/store';
import { TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { readSafetensors } from '../../model/safetensors';
import {
  checkpointKey,
  decodeLocationCommit,
  encodeSignatureCommit,
  encodeValidatorCommit,
  type LocationCommit,
} from './commitments';
import { ourName, readExpertShard, shardFileName } from './expert-shard';
import { phaseWindow, roundOf, type PhaseSpec } from './phases';
import { fromFloat32, writeStateDict } from './torch-pt';
import type { Submission } from './validator';

/** The file beside the expert shards holding every other tensor of the global model. */
export const SHARED_FILE = 'model_shared.pt';

interface Pending {
  round: number; // the round the model won
  committing?: number; // the round being committed in
  commit: { h: string; v: number; e: number; r: string; rv: string };
  signed?: boolean;
  located?: boolean;
}

export class DevnetGlobalPublisher {
  private pending?: Pending;

  constructor(
    private readonly opts: {
      netuid: number;
      repo: string; // the validator's own Hugging Face repo
      hotkey: KeyringPair;
      phases: PhaseSpec[];
      hub: () => ModelHub;
      store: () => CheckpointStore;
      chain: () => Promise<Chain>;
      log: (msg: string) => void;
    },
  ) {}

  /** After a round is scored: publishes the winner's model to the hub, to be committed in the validator phases. */
  async roundScored(
    round: number,
    submissions: Submission[],
    ranks: Map<string, { rank?: number; loss: number }>,
  ): Promise<void> {
    const best = submissions
      .map((s) => ({ s, r: ranks.get(s.hotkey), loc: s.commit2 && decodeLocationCommit(s.commit2.payload) }))
      .filter((x) => x.r?.rank === 1 && Number.isFinite(x.r.loss) && x.loc?.r && x.loc.rv)[0];
    if (!best) return; // nothing better to publish: the previous global model stands
    const loc = best.loc as Required<LocationCommit>;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-global-'));
    try {
      const shard = path.join(dir, shardFileName(loc.e));
      await this.opts.hub().download(loc.r, loc.rv, shardFileName(loc.e), shard);
      // The rest of the model: everything but the experts in the shard, from the winner's checkpoint.
      const store = this.opts.store();
      const weights = (await readSafetensors(await store.get(`${checkpointKey(loc.h)}/${WEIGHTS_FILE}`))).tensors;
      const inShard = new Set([...(await readExpertShard(shard)).tensors.keys()].map(ourName));
      const shared = new Map(
        [...weights]
          .filter(([name]) => !inShard.has(name))
          .map(([name, t]) => [name, fromFloat32(name, t.data, t.shape, 'float32')]),
      );
      await writeStateDict(path.join(dir, SHARED_FILE), shared);
      const files = [
        { path: shardFileName(loc.e), file: shard },
        { path: SHARED_FILE, file: path.join(dir, SHARED_FILE) },
      ];
      const tokenizer = `${checkpointKey(loc.h)}/${TOKENIZER_FILE}`;
      if (await store.exists(tokenizer)) files.push({ path: TOKENIZER_FILE, file: await store.get(tokenizer) });
      const { commitSha } = await this.opts
        .hub()
        .upload(this.opts.repo, files, `global model after round ${round}: ${best.s.hotkey}'s expert group ${loc.e}`);
      const v = phaseWindow({ origin: 0, phases: this.opts.phases }, round, 'MinerCommit1').start;
      this.pending = {
        round,
        committing: undefined,
        commit: { h: loc.h, v, e: loc.e, r: this.opts.repo, rv: commitSha.slice(0, 7) },
      };
      this.opts.log(
        `devnet validator: global model v${v} (round ${round}) is ${loc.h} at ${this.opts.repo}@${commitSha}`,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * On each block: the signature inside ValidatorCommit1, the hash and location inside
   * ValidatorCommit2 — every round from the model's first, as Connito's validators commit every
   * round (a round without a better model repeats the current one).
   */
  async onBlock(block: number): Promise<void> {
    const p = this.pending;
    if (!p) return;
    const sched = { origin: 0, phases: this.opts.phases };
    const round = Math.max(p.round, roundOf(sched, block + 1));
    if (round !== p.committing) Object.assign(p, { committing: round, signed: false, located: false });
    const vc1 = phaseWindow(sched, round, 'ValidatorCommit1');
    const vc2 = phaseWindow(sched, round, 'ValidatorCommit2');
    if (!p.signed && block >= vc1.start - 1 && block < vc1.end) {
      p.signed = true; // before the await: the next block must not send it again
      const sig = Buffer.from(this.opts.hotkey.sign(p.commit.h)).toString('base64url');
      const at = await (await this.opts.chain()).commit(this.opts.hotkey, this.opts.netuid, encodeSignatureCommit(sig));
      this.opts.log(`devnet validator: commit 1 (signature) in round ${round} at block ${at.block}`);
    } else if (p.signed && !p.located && block >= vc2.start && block < vc2.end) {
      p.located = true;
      const at = await (
        await this.opts.chain()
      ).commit(this.opts.hotkey, this.opts.netuid, encodeValidatorCommit(p.commit));
      this.opts.log(
        `devnet validator: commit 2 (global model v${p.commit.v} ${p.commit.h}) in round ${round} at block ${at.block}`,
      );
    }
  }
}
