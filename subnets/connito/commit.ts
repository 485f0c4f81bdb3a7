// Connito's commit stage (control queue): the two-phase commit through the Chain port.
//   commit 1, inside MinerCommit1: the sr25519 signature of the model hash (nobody can copy it yet);
//   commit 2, after MinerCommit1 ends and before MinerCommit2 ends: the hash and where to download it.
// A commit is idempotent: a retry whose commitment already landed inside the window (its worker
// died after submitting) is done, not re-sent, and never reported as missed.
import { heartbeat, log, sleep } from '@temporalio/activity';
import { signatureVerify } from '@polkadot/util-crypto';
import { parseOrExplain } from '../../common/config';
import { MissedWindowError, mapErrors } from '../../activities/errors';
import type { Chain } from '../../infra/chain/chain';
import { ChainRejectedError } from '../../infra/chain/chain';
import type { Settings } from '../../infra/settings';
import { loadHotkey } from '../../infra/wallet';
import {
  decodeLocationCommit,
  decodeSignatureCommit,
  encodeLocationCommit,
  encodeSignatureCommit,
  type LocationCommit,
} from './commitments';
import { MinerSchema, type MinerInput } from './config';
import { planCommit } from './phases';
import type { CommitPlan, CommitReceipt, CommitWindow } from './types';

/** How long a commit that is early for its window waits in the activity before a (retryable) failure. */
const EARLY_WAIT_MS = 30_000;

/** Time we want left in a window to sign and get included. */
const COMMIT_MARGIN_MS = 1500;

export interface CommitActivityInput {
  miner: MinerInput;
  hash: string;
  window: CommitWindow;
}

export interface LocationCommitInput extends CommitActivityInput {
  /** Commit 2's fields besides the hash (see commitments.ts); v is 0 until rounds start from a global model. */
  commit?: Omit<LocationCommit, 'h'>;
  /** Our store's URI: Connito's commit has no field for it, so it is not committed (kept so recorded histories replay). */
  location?: string;
}

export function makeCommit(settings: Settings, chain: () => Promise<Chain>) {
  async function signer(minerRaw: MinerInput) {
    const miner = parseOrExplain(MinerSchema, minerRaw, 'commit input miner');
    const pair = await loadHotkey(settings.walletsDir, miner.wallet, miner.hotkey);
    const uid = await (await chain()).uid(pair.address, miner.netuid);
    if (uid === null) {
      throw new ChainRejectedError(
        `hotkey ${pair.address} (wallet '${miner.wallet}', hotkey '${miner.hotkey}') is not registered on netuid ${miner.netuid}; register it before mining`,
      );
    }
    return { miner, pair };
  }

  /**
   * Throws retryably before the window opens, permanently once it has closed. By block where the
   * plan has them: a transaction lands in the block after the head, and the validators read windows
   * in blocks, so a chain slower than planned must not pull a commit into the wrong window.
   */
  async function checkWindow(what: string, w: CommitWindow): Promise<void> {
    if (w.startBlock === undefined || w.endBlock === undefined) {
      const now = Date.now(); // a plan recorded before windows carried blocks
      if (now < w.opensAt)
        throw new Error(`${what} window of round ${w.round} opens in ${w.opensAt - now} ms; retrying`);
      if (now >= w.closesAt)
        throw new MissedWindowError(`${what} window of round ${w.round} closed ${now - w.closesAt} ms ago`);
      return;
    }
    let next = (await (await chain()).blockNumber()) + 1;
    // Early by a few blocks (the chain is slower than planned): wait here, heartbeating, then retry.
    for (
      const until = Date.now() + EARLY_WAIT_MS;
      next < w.startBlock && Date.now() < until;
      next = (await (await chain()).blockNumber()) + 1
    ) {
      heartbeat({ phase: what, round: w.round, waitingForBlock: w.startBlock, next });
      await sleep(250);
    }
    if (next < w.startBlock)
      throw new Error(
        `${what} window of round ${w.round} opens at block ${w.startBlock}; the next block is ${next}; retrying`,
      );
    if (next >= w.endBlock)
      throw new MissedWindowError(
        `${what} window of round ${w.round} (blocks ${w.startBlock}–${w.endBlock - 1}) closed: the next block is ${next}`,
      );
  }

  /** Our commitment for this phase, already on chain inside the window (an earlier attempt's), if any. */
  async function alreadyIncluded(
    phase: CommitReceipt['phase'],
    address: string,
    netuid: number,
    w: CommitWindow,
    isOurs: (payload: string) => boolean,
  ): Promise<CommitReceipt | undefined> {
    if (w.startBlock === undefined || w.endBlock === undefined) return undefined;
    const current = await (await chain()).commitment(address, netuid);
    if (!current || current.block < w.startBlock || current.block >= w.endBlock || !isOurs(current.payload))
      return undefined;
    log.info(`${phase} was already included by an earlier attempt`, { block: current.block, hotkey: address });
    return { phase, block: current.block, payload: current.payload, bytes: Buffer.byteLength(current.payload) };
  }

  async function send(
    phase: CommitReceipt['phase'],
    miner: MinerInput,
    pair: Awaited<ReturnType<typeof signer>>['pair'],
    payload: string,
    w: CommitWindow,
  ): Promise<CommitReceipt> {
    await checkWindow(phase, w);
    // Inclusion takes a block or two: heartbeat meanwhile, so a worker that dies here is noticed
    // within the heartbeat timeout and the retry (which finds the landed commitment) starts at once.
    const beat = setInterval(() => heartbeat({ phase, round: w.round }), 1000);
    heartbeat({ phase, round: w.round });
    const { block } = await (await chain()).commit(pair, miner.netuid, payload).finally(() => clearInterval(beat));
    if (w.endBlock !== undefined && block >= w.endBlock)
      throw new MissedWindowError(
        `${phase} of round ${w.round} was included at block ${block}, after its window closed (block ${w.endBlock - 1})`,
      );
    const receipt: CommitReceipt = { phase, block, payload, bytes: Buffer.byteLength(payload) };
    log.info(`${phase} included`, { block, bytes: receipt.bytes, hotkey: pair.address });
    return receipt;
  }

  return {
    /** The next round whose commit windows we can still make (with minLeadMs, train for first); with `round`, that round re-planned from the chain now. */
    async planCommit(input: { minLeadMs?: number; round?: number } = {}): Promise<CommitPlan> {
      return planCommit(
        await (await chain()).schedule(),
        Date.now(),
        COMMIT_MARGIN_MS,
        input.minLeadMs ?? 0,
        input.round,
      );
    },

    async commitSignature(input: CommitActivityInput): Promise<CommitReceipt> {
      return mapErrors(async () => {
        const { miner, pair } = await signer(input.miner);
        // sr25519 signatures are randomised: an earlier attempt's differs from a new one but verifies the same.
        const ours = (payload: string) => {
          const sig = decodeSignatureCommit(payload);
          return !!sig && signatureVerify(input.hash, Buffer.from(sig.m, 'base64url'), pair.address).isValid;
        };
        const done = await alreadyIncluded('commit1', pair.address, miner.netuid, input.window, ours);
        if (done) return done;
        const signature = Buffer.from(pair.sign(input.hash)).toString('base64url');
        return send('commit1', miner, pair, encodeSignatureCommit(signature), input.window);
      });
    },

    async commitLocation(input: LocationCommitInput): Promise<CommitReceipt> {
      return mapErrors(async () => {
        const { miner, pair } = await signer(input.miner);
        const payload = encodeLocationCommit({ ...(input.commit ?? { v: 0 }), h: input.hash });
        const done = await alreadyIncluded(
          'commit2',
          pair.address,
          miner.netuid,
          input.window,
          (p) => p === payload || decodeLocationCommit(p)?.h === input.hash,
        );
        if (done) return done;
        // A hotkey holds one commitment: if it is no longer our commit 1, another cycle on this
        // hotkey committed over it, and our commit 2 would only pair with its signature.
        const current = await (await chain()).commitment(pair.address, miner.netuid);
        const sig = current && decodeSignatureCommit(current.payload);
        if (!sig || !signatureVerify(input.hash, Buffer.from(sig.m, 'base64url'), pair.address).isValid) {
          throw new CommitOverwrittenError(
            `another commitment from hotkey ${pair.address} (at block ${current?.block ?? '?'}) replaced our commit 1 of round ${input.window.round}: is a second cycle running on this hotkey? Not sending commit 2`,
          );
        }
        return send('commit2', miner, pair, payload, input.window);
      });
    },
  };
}

/** Our commit 1 is no longer the hotkey's commitment: another cycle on the hotkey committed over it. */
export class CommitOverwrittenError extends Error {
  override name = 'CommitOverwrittenError';
}
