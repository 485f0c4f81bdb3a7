// Connito's control-queue metrics: each commit made or missed (with the reason), the round a
// hotkey mines for, and each round's score, recorded around the activities that learn them
// (commit.ts and score.ts stay unaware of metrics).
import { ApplicationFailure } from '@temporalio/common';
import { hotkeyLabel } from '../../common/search-attributes';
import {
  recordCommit,
  recordHotkeySeen,
  recordMissedCommit,
  recordRound,
  recordScore,
  type FleetLabels,
} from '../../infra/metrics';
import type { makeCommit } from './commit';
import type { MinerInput } from './config';
import type { makePreflight } from './preflight';
import type { makeAwaitScore } from './score';
import type { CommitReceipt, CommitWindow, ScoreReport } from './types';

const labelsOf = (miner: MinerInput): FleetLabels => ({ subnet: 'connito', hotkey: hotkeyLabel(miner) });

/** Why a commit failed for good, as a label (mapErrors types a permanent failure by its error's name); undefined: it is retried. */
function reasonOf(err: unknown): string | undefined {
  const name = err instanceof ApplicationFailure ? err.type : err instanceof Error ? err.name : undefined;
  if (name === 'MissedWindowError') return 'window_closed';
  if (name === 'CommitOverwrittenError') return 'overwritten';
  if (name === 'ChainRejectedError' || name === 'CommitTooLargeError') return 'rejected';
  return undefined;
}

type Commits = ReturnType<typeof makeCommit>;
type Preflight = ReturnType<typeof makePreflight>;
type AwaitScore = ReturnType<typeof makeAwaitScore>;

function measured<I extends { miner: MinerInput; window: CommitWindow }>(
  phase: CommitReceipt['phase'],
  commit: (input: I) => Promise<CommitReceipt>,
): (input: I) => Promise<CommitReceipt> {
  return async (input) => {
    const labels = labelsOf(input.miner);
    recordRound(labels, input.window.round);
    try {
      const receipt = await commit(input);
      recordCommit(labels, phase);
      return receipt;
    } catch (err) {
      const reason = reasonOf(err);
      if (reason) recordMissedCommit(labels, phase, reason);
      throw err;
    }
  };
}

/** The commit activities, counting commits made and missed. */
export function measureCommits(c: Commits): Commits {
  return {
    ...c,
    commitSignature: measured('commit1', c.commitSignature),
    commitLocation: measured('commit2', c.commitLocation),
  };
}

/** The preflight, which shows a cycle's hotkey to the metrics first (its counters start at 0). */
export function measurePreflight(preflight: Preflight): Preflight {
  return async (input) => {
    recordHotkeySeen(labelsOf(input.miner));
    return preflight(input);
  };
}

/** The score activity, recording each round's outcome. */
export function measureScore(awaitScore: AwaitScore): AwaitScore {
  return async (input) => {
    const report: ScoreReport = await awaitScore(input);
    recordHotkeySeen(labelsOf(input.miner));
    recordScore(labelsOf(input.miner), report);
    return report;
  };
}
