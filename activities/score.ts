// Stage 5, awaitScore (control queue): poll the chain until the validators have scored this round,
// or the deadline passes (then the cycle reports a timeout rather than hanging).
import { heartbeat, sleep } from '@temporalio/activity';
import { MinerSchema, parseOrExplain, type MinerInput } from '../common/config';
import type { ScoreReport } from '../common/types';
import type { Chain } from '../infra/chain/chain';
import type { Settings } from '../infra/settings';
import { loadHotkey } from '../infra/wallet';
import { mapErrors } from './errors';

export interface AwaitScoreInput {
  miner: MinerInput;
  round: number;
  validateStartBlock: number;
  timeoutSeconds: number;
  pollSeconds: number;
}

export function makeAwaitScore(settings: Settings, chain: () => Promise<Chain>) {
  return async function awaitScore(input: AwaitScoreInput): Promise<ScoreReport> {
    return mapErrors(async () => {
      const miner = parseOrExplain(MinerSchema, input.miner, 'awaitScore input miner');
      const { address } = await loadHotkey(settings.walletsDir, miner.wallet, miner.hotkey);
      const deadline = Date.now() + input.timeoutSeconds * 1000;
      for (;;) {
        const c = await chain();
        const s = await c.score(address, miner.netuid);
        if (s && s.updatedAtBlock >= input.validateStartBlock) {
          const d = s.details;
          return {
            status: 'scored',
            round: input.round,
            hotkey: address,
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
        if (Date.now() >= deadline) {
          return { status: 'timeout', round: input.round, hotkey: address, reason: `no score for round ${input.round} within ${input.timeoutSeconds} s` };
        }
        heartbeat({ waitingForRound: input.round, block: (await c.schedule()).block });
        await sleep(input.pollSeconds * 1000);
      }
    });
  };
}
