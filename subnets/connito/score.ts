// Connito's score stage (control queue): poll the chain until the validators have scored this round,
// or the deadline passes (then the cycle reports a timeout rather than hanging). The report is
// ours only if the commitment the validators read was ours: a hotkey holds one commitment, so a
// second cycle on the same hotkey overwrites the first, and that one reports `overwritten`.
import { heartbeat, sleep } from '@temporalio/activity';
import { parseOrExplain } from '../../common/config';
import { mapErrors } from '../../activities/errors';
import type { Chain } from '../../infra/chain/chain';
import type { Settings } from '../../infra/settings';
import { loadHotkey } from '../../infra/wallet';
import { decodeLocationCommit } from './commitments';
import { MinerSchema, type MinerInput } from './config';
import type { ScoreReport } from './types';

export interface AwaitScoreInput {
  miner: MinerInput;
  round: number;
  validateStartBlock: number;
  hash?: string; // the hash we committed (absent in histories recorded before it was passed)
  timeoutSeconds: number;
  pollSeconds: number;
}

export function makeAwaitScore(settings: Settings, chain: () => Promise<Chain>) {
  return async function awaitScore(input: AwaitScoreInput): Promise<ScoreReport> {
    return mapErrors(async () => {
      const miner = parseOrExplain(MinerSchema, input.miner, 'awaitScore input miner');
      const { address } = await loadHotkey(settings.walletsDir, miner.wallet, miner.hotkey);
      const deadline = Date.now() + input.timeoutSeconds * 1000;
      const base = { round: input.round, hotkey: address };
      for (;;) {
        const c = await chain();
        const s = await c.score(address, miner.netuid);
        if (s && s.updatedAtBlock >= input.validateStartBlock) {
          const winner =
            input.hash && (await overwrittenBy(c, address, miner.netuid, input.validateStartBlock, input.hash));
          if (winner) {
            return {
              ...base,
              status: 'overwritten',
              winningHash: winner,
              reason: `another commitment from this hotkey (hash ${winner}) replaced ours (${input.hash}) before round ${input.round} was validated; its score is not ours`,
            };
          }
          const d = s.details;
          return {
            ...base,
            // A validator that refused the submission (bad signature, hash mismatch, unreadable file) says why.
            status: d?.reason ? 'rejected' : 'scored',
            uid: s.uid,
            incentiveShare: s.incentiveShare,
            validatorLoss: d?.loss,
            baselineLoss: d?.baselineLoss,
            rawScore: d?.rawScore,
            rank: d?.rank,
            reward: d?.reward,
            reason: d?.reason,
          };
        }
        if (Date.now() >= deadline)
          return {
            ...base,
            status: 'timeout',
            reason: `no score for round ${input.round} within ${input.timeoutSeconds} s`,
          };
        heartbeat({ waitingForRound: input.round, block: (await c.schedule()).block });
        await sleep(input.pollSeconds * 1000);
      }
    });
  };
}

/**
 * The hash that replaced ours before validation, if any. A commitment set at or after the
 * validation block came later (the next round) and says nothing about this one.
 */
async function overwrittenBy(
  chain: Chain,
  address: string,
  netuid: number,
  validateStartBlock: number,
  ours: string,
): Promise<string | undefined> {
  const current = await chain.commitment(address, netuid);
  if (!current || current.block >= validateStartBlock) return undefined;
  const h = decodeLocationCommit(current.payload)?.h;
  if (h === ours) return undefined;
  return h ?? `(a commit-1 signature set at block ${current.block})`;
}
