// The long-running miner: one miningCycle after another, each a child workflow that aligns itself
// with the chain's next commit window, each warm-started from the best state so far. State (best
// checkpoint, score history) is carried through continue-as-new so the history stays small.
import {
  ApplicationFailure,
  continueAsNew,
  defineQuery,
  defineSignal,
  executeChild,
  patched,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { InvalidInputError, parseOrExplain } from '../common/config';
import { CycleInputSchema, cycleWorkflowId } from '../subnets/connito/config';
import { TASK_QUEUES } from '../common/queues';
import { miningCycle } from '../subnets/connito/workflow';

export interface MinerLoopCarry {
  completed: number;
  failedInARow: number;
  best?: { key: string; heldOutLoss: number; hash: string; cycle: number };
  scores: {
    cycle: number;
    workflowId: string;
    status: string;
    round: number;
    heldOutLoss?: number;
    incentiveShare?: number;
    error?: string;
  }[];
}

export interface MinerLoopInput {
  cycle?: Record<string, unknown>; // a miningCycle input; {} for the defaults
  cycles?: number | null; // stop after this many; null runs until stopLoop
  cyclesPerRun?: number; // continue-as-new after this many cycles
  carry?: MinerLoopCarry;
}

export const loopStatusQuery = defineQuery<MinerLoopCarry & { stopping: boolean }>('loopStatus');
/** Finish after the running cycle. */
export const stopLoopSignal = defineSignal('stopLoop');

const SCORE_HISTORY = 50;
const MAX_FAILURES_IN_A_ROW = 3;

/** How long the loop waits before trying again when another cycle holds the hotkey. */
const HOTKEY_BUSY_WAIT = '1 minute';

export async function minerLoop(input: MinerLoopInput): Promise<MinerLoopCarry> {
  let miner;
  try {
    miner = parseOrExplain(CycleInputSchema, input.cycle ?? {}, 'minerLoop input cycle').miner;
  } catch (err) {
    if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInputError');
    throw err;
  }
  const carry: MinerLoopCarry = input.carry ?? { completed: 0, failedInARow: 0, scores: [] };
  let stopping = false;
  setHandler(loopStatusQuery, () => ({ ...carry, stopping }));
  setHandler(stopLoopSignal, () => void (stopping = true));
  const perRun = input.cyclesPerRun ?? 10;

  for (let inThisRun = 0; !stopping && (input.cycles == null || carry.completed < input.cycles); inThisRun++) {
    if (inThisRun >= perRun || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof minerLoop>({ ...input, carry });
    }
    const n = carry.completed + 1;
    const base = input.cycle ?? {};
    const training = {
      ...((base.training as Record<string, unknown> | undefined) ?? {}),
      ...(carry.best ? { initFrom: carry.best.key } : {}),
    };
    // The hotkey's cycle id (as the CLI's): a cycle started by hand on this hotkey and the loop's
    // cannot run at once. Histories from before it keep their per-loop ids (patched).
    const workflowId = patched('hotkey-cycle-id') ? cycleWorkflowId(miner) : `${workflowInfo().workflowId}-cycle-${n}`;
    try {
      const r = await executeChild(miningCycle, {
        args: [{ ...base, training }],
        workflowId,
        taskQueue: TASK_QUEUES.control,
      });
      carry.failedInARow = 0;
      carry.scores.push({
        cycle: n,
        workflowId,
        status: r.score.status,
        round: r.score.round,
        heldOutLoss: r.checkpoint.heldOutLoss,
        incentiveShare: r.score.incentiveShare,
      });
      if (!carry.best || r.checkpoint.heldOutLoss < carry.best.heldOutLoss) {
        carry.best = {
          key: r.training.best.key,
          heldOutLoss: r.checkpoint.heldOutLoss,
          hash: r.checkpoint.hash,
          cycle: n,
        };
      }
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        // Not a failed cycle: the hotkey is busy with one started elsewhere; it commits for this round.
        carry.scores.push({
          cycle: n,
          workflowId,
          status: 'busy',
          round: -1,
          error: `${workflowId} is already running`,
        });
        carry.scores.splice(0, Math.max(0, carry.scores.length - SCORE_HISTORY));
        await sleep(HOTKEY_BUSY_WAIT);
        inThisRun -= 1;
        continue;
      }
      // A miner must submit every cycle: one failed cycle does not stop the loop, a streak does.
      carry.failedInARow += 1;
      carry.scores.push({
        cycle: n,
        workflowId,
        status: 'failed',
        round: -1,
        error: err instanceof Error ? err.message : String(err),
      });
      if (carry.failedInARow >= MAX_FAILURES_IN_A_ROW) {
        throw ApplicationFailure.nonRetryable(
          `${carry.failedInARow} cycles failed in a row; the last: ${carry.scores.at(-1)!.error}`,
          'CycleFailures',
        );
      }
    }
    carry.completed = n;
    carry.scores.splice(0, Math.max(0, carry.scores.length - SCORE_HISTORY));
  }
  return carry;
}
