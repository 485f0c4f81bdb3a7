// Stage 4, commit (control queue): the two-phase commit through the Chain port.
//   commit 1, inside MinerCommit1: the sr25519 signature of the model hash (nobody can copy it yet);
//   commit 2, after MinerCommit1 ends and before MinerCommit2 ends: the hash and where to download it.
import { log } from '@temporalio/activity';
import { encodeCommit, COMMIT_FORMAT_VERSION } from '../common/commitments';
import { MinerSchema, parseOrExplain, type MinerInput } from '../common/config';
import { planCommit } from '../common/phases';
import type { CommitPlan, CommitReceipt, CommitWindow } from '../common/types';
import type { Chain } from '../infra/chain/chain';
import { ChainRejectedError } from '../infra/chain/chain';
import type { Settings } from '../infra/settings';
import { loadHotkey } from '../infra/wallet';
import { mapErrors, MissedWindowError } from './errors';

/** Time we want left in a window to sign and get included. */
const COMMIT_MARGIN_MS = 1500;

export interface CommitActivityInput {
  miner: MinerInput;
  hash: string;
  window: CommitWindow;
}

export interface LocationCommitInput extends CommitActivityInput {
  location: string;
}

export function makeCommit(settings: Settings, chain: () => Promise<Chain>) {
  async function signer(minerRaw: MinerInput) {
    const miner = parseOrExplain(MinerSchema, minerRaw, 'commit input miner');
    const pair = await loadHotkey(settings.walletsDir, miner.wallet, miner.hotkey);
    const uid = await (await chain()).uid(pair.address, miner.netuid);
    if (uid === null) {
      throw new ChainRejectedError(`hotkey ${pair.address} (wallet '${miner.wallet}', hotkey '${miner.hotkey}') is not registered on netuid ${miner.netuid}; register it before mining`);
    }
    return { miner, pair };
  }

  /** Throws retryably before the window opens (timer drift), permanently once it has closed. */
  function checkWindow(what: string, w: CommitWindow): void {
    const now = Date.now();
    if (now < w.opensAt) throw new Error(`${what} window of round ${w.round} opens in ${w.opensAt - now} ms; retrying`);
    if (now >= w.closesAt) throw new MissedWindowError(`${what} window of round ${w.round} closed ${now - w.closesAt} ms ago`);
  }

  async function send(phase: CommitReceipt['phase'], miner: MinerInput, pair: Awaited<ReturnType<typeof signer>>['pair'], payload: string, w: CommitWindow) {
    checkWindow(phase, w);
    const { block } = await (await chain()).commit(pair, miner.netuid, payload);
    const receipt: CommitReceipt = { phase, block, payload, bytes: Buffer.byteLength(payload) };
    log.info(`${phase} included`, { block, bytes: receipt.bytes, hotkey: pair.address });
    return receipt;
  }

  return {
    /** The next round whose commit windows we can still make (and, with minLeadMs, train for first). */
    async planCommit(input: { minLeadMs?: number } = {}): Promise<CommitPlan> {
      return planCommit(await (await chain()).schedule(), Date.now(), COMMIT_MARGIN_MS, input.minLeadMs ?? 0);
    },

    async commitSignature(input: CommitActivityInput): Promise<CommitReceipt> {
      return mapErrors(async () => {
        const { miner, pair } = await signer(input.miner);
        const signature = Buffer.from(pair.sign(input.hash)).toString('base64url');
        return send('commit1', miner, pair, encodeCommit({ s: signature }), input.window);
      });
    },

    async commitLocation(input: LocationCommitInput): Promise<CommitReceipt> {
      return mapErrors(async () => {
        const { miner, pair } = await signer(input.miner);
        return send('commit2', miner, pair, encodeCommit({ h: input.hash, u: input.location, v: COMMIT_FORMAT_VERSION }), input.window);
      });
    },
  };
}
