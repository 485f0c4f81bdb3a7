// Connito's mining cycle: curate → train (the shared loop) → checkpoint → commit (two phases) →
// await score. Deterministic orchestration only; every stage is an activity with its own timeout
// and retries. The round to commit for comes from the chain's phase schedule, and the training
// deadline is re-derived from the chain between segments. People steer it with the training
// messages (workflows/training-loop.ts) and read it with `status`.
import {
  ApplicationFailure,
  defineQuery,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities, GpuActivities } from '../../activities';
import { InvalidInputError, parseOrExplain } from '../../common/config';
import { TASK_QUEUES } from '../../common/queues';
import { hotkeyLabel } from '../../common/search-attributes';
import { fleetSearchAttributes } from '../../workflows/fleet';
import { handleTrainingMessages, runTrainingLoop, stage } from '../../workflows/training-loop';
import { fmt } from '../../workflows/training-state';
import { CycleInputSchema, type CycleInput } from './config';
import { CycleState } from './cycle-state';
import type { CommitPlan, CommitWindow, CycleResult, CycleStatus, ScoreReport } from './types';

export const statusQuery = defineQuery<CycleStatus>('status');

/** Blocks before a commit window's projected opening at which its activity starts (and waits by block). */
const COMMIT_LEAD_BLOCKS = 3;

// --- Activities ---------------------------------------------------------------------------------
const { curateCorpus } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2s', maximumAttempts: 5 },
});
// Preflight fails fast: a bad wallet or an unregistered hotkey at once (permanent errors); a chain
// or store that does not answer after a few quick retries (about 12 s), which tell it from a blip.
const { distribute } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2s', maximumAttempts: 5 },
});
const { preflight } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '60s',
  retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5 },
});
const { checkTrainer } = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5 },
});
const { planCommit } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10 },
});
// Commits retry fast: a window is minutes long; the activity fails for good once it has closed.
// They heartbeat while waiting for inclusion, so a dead worker costs seconds, not the window.
const { commitSignature, commitLocation } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '60s',
  heartbeatTimeout: '5s',
  retry: { initialInterval: '500ms', backoffCoefficient: 1.5, maximumInterval: '5s', maximumAttempts: 30 },
});
const { awaitScore } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5s', maximumAttempts: 10 },
});
const { checkpoint } = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '5 minutes',
  retry: { initialInterval: '5s', maximumAttempts: 5 },
});

export async function miningCycle(rawInput: unknown): Promise<CycleResult> {
  const input = validate(rawInput);
  const state = new CycleState(input.training.steps);
  // Histories recorded before the fleet's search attributes existed replay without their upserts.
  const fleet = fleetSearchAttributes(patched('fleet-search-attributes'), {
    subnet: 'connito',
    hotkey: hotkeyLabel(input.miner),
  });
  const show = () => {
    setCurrentDetails(state.details());
    fleet.update({ phase: state.phase, round: state.plan?.round });
  };
  setHandler(statusQuery, () => state.status());
  handleTrainingMessages(state, show);

  const runId = workflowInfo().workflowId;
  try {
    // Histories recorded before the preflight existed replay without it.
    if (patched('preflight-at-start')) {
      state.enter(
        'preflight',
        `checking wallet '${input.miner.wallet}/${input.miner.hotkey}', registration on netuid ${input.miner.netuid}, chain, store and trainer`,
      );
      show();
      const [ok, fits] = await Promise.all([
        stage('preflight', preflight({ miner: input.miner })),
        stage('preflight', checkTrainer({ trainer: input.trainer, model: input.model, training: input.training })),
      ]);
      state.event(
        `preflight: hotkey ${ok.hotkey} is uid ${ok.uid} on netuid ${input.miner.netuid}, chain at block ${ok.block}, store ${ok.store} writable; the ${input.trainer.kind} trainer fits (~${Math.round(fits.estimatedBytes / 2 ** 20)} MiB of ${Math.round(fits.availableBytes / 2 ** 20)} MiB on ${fits.backend})`,
      );
    }
    state.enter('curate', `curating ${input.corpus.path}`);
    show();
    const dataset = (state.dataset = await stage(
      'curate',
      curateCorpus({ corpus: input.corpus, curate: input.curate }),
    ));

    // Train for the first round whose commit 1 leaves time to train, and stop in time for it.
    state.plan = await stage(
      'commit',
      planCommit({ minLeadMs: (input.commit.minTrainSeconds + input.commit.reserveSeconds) * 1000 }),
    );
    state.trainingDeadline = state.plan.commit1.opensAt - input.commit.reserveSeconds * 1000;
    const training = await distributeStage(input, state, show);
    await runTrainingLoop({ ...input, training }, state, {
      runId,
      dataset,
      show,
      labels: fleet.labels,
      replanDeadline: () => replanDeadline(input, state),
    });
    const best = state.best;
    if (!best)
      throw ApplicationFailure.nonRetryable(
        `no training segment produced a finite held-out loss (${state.segments.length} segments); nothing to commit`,
        'NothingToCommit',
      );

    state.enter('checkpoint', `publishing the best state: step ${best.endStep}, held-out ${fmt(best.heldOutLoss)}`);
    show();
    const ckpt = (state.checkpoint = await stage(
      'checkpoint',
      checkpoint({
        runId,
        dataset,
        state: best.state,
        trainLoss: best.trainLoss,
        backend: best.backend,
        round: state.plan.round,
        trainer: input.trainer,
        model: input.model,
        eval: input.eval,
        publish: input.publish,
      }),
    ));

    const committed = await commitTwoPhase(input, state, show);
    if ('commit1' in committed) {
      state.enter('awaitScore', `waiting for the validators' score of round ${committed.round}`);
      show();
      state.score = await stage(
        'awaitScore',
        awaitScore({
          miner: input.miner,
          round: committed.round,
          validateStartBlock: committed.validateStartBlock,
          hash: ckpt.hash,
          ...input.score,
        }),
      );
    } else {
      state.score = committed; // missed every window it could use, or overwritten by another cycle on this hotkey
    }
    state.enter(
      'done',
      `score: ${state.score.status}${state.score.incentiveShare !== undefined ? `, incentive share ${state.score.incentiveShare}` : ''}${state.score.reason ? ` (${state.score.reason})` : ''}`,
    );
    show();
    const last = state.segments.at(-1)!;
    return {
      workflowId: runId,
      hotkey: state.score.hotkey,
      dataset,
      training: {
        steps: best.endStep,
        stepsRun: state.stepsRun(),
        plannedSteps: state.plannedSteps,
        segments: state.segments.length,
        trainLoss: best.trainLoss,
        heldOutLoss: best.heldOutLoss,
        tokensPerSec: last.tokensPerSec,
        backend: last.backend,
        best: best.state,
        learningRate: state.learningRate!,
        lrFind: state.lrFind,
      },
      segments: state.segments,
      decisions: state.decisions,
      checkpoint: ckpt,
      commits: state.commits,
      missedWindows: state.missedWindows,
      score: state.score,
      distribute: state.distribute,
    };
  } catch (err) {
    state.enter('failed', err instanceof Error ? err.message : String(err));
    show();
    throw err;
  }
}

/**
 * Distribute: the round trains from the validators' latest global model when there is one for this
 * hotkey's expert group (and the operator gave no training.initFrom of their own); its version is
 * what commit 2 reports as v. Only cycles that publish to a hub take part, as only they can be merged.
 */
async function distributeStage(
  input: CycleInput,
  state: CycleState,
  show: () => void,
): Promise<CycleInput['training']> {
  // Histories recorded before Distribute existed replay without it.
  if (!patched('distribute') || !input.publish.repo || input.training.initFrom) return input.training;
  state.enter('distribute', `looking for the validators' global model before round ${state.plan!.round}`);
  show();
  const report = (state.distribute = await stage(
    'distribute',
    distribute({ round: state.plan!.round, miner: input.miner, publish: input.publish }),
  ));
  if (report.status === 'none') {
    state.event(`distribute: training from the cycle's own start: ${report.reason}`);
    return input.training;
  }
  state.globalVer = report.globalVer;
  state.event(
    `distribute: warm start from global model v${report.globalVer} ${report.hash} (${report.repo}@${report.revision})`,
  );
  return { ...input.training, initFrom: report.initFrom };
}

/**
 * Between segments: the round's commit 1 opens at a block, not at a time computed once from the
 * nominal block time; real chains (and a busy devnet) drift, so the deadline follows the chain.
 */
async function replanDeadline(input: CycleInput, state: CycleState): Promise<void> {
  // Histories recorded before the re-plan existed replay without this activity.
  if (!patched('replan-deadline-from-chain') || !state.plan) return;
  const before = state.trainingDeadline;
  const plan = observed(state, await stage('commit', planCommit({ round: state.plan.round })));
  const deadline = plan.commit1.opensAt - input.commit.reserveSeconds * 1000;
  if (before !== undefined && Math.abs(deadline - before) >= 1000) {
    state.event(
      `training deadline moved ${Math.round((deadline - before) / 1000)} s with the chain: now ${new Date(deadline).toISOString()}`,
    );
  }
  state.trainingDeadline = deadline;
}

/**
 * Commit 1 inside MinerCommit1, commit 2 after it and before MinerCommit2 ends. A missed window is
 * recorded loudly and the commit moves to the next round, as long as the checkpoint is not older
 * than commit.maxRounds allows; returns the round's plan, or undefined if every try missed.
 */
async function commitTwoPhase(
  input: CycleInput,
  state: CycleState,
  show: () => void,
): Promise<CommitPlan | ScoreReport> {
  const ckpt = state.checkpoint!;
  // The round this cycle commits for: the one it trained for, then the next after each miss. Its
  // windows are re-planned from the chain now; a miss is only ever recorded for this round.
  for (let aim = ckpt.round; ; aim++) {
    // Planned before the maxRounds check, as recorded histories did it (replay needs the same calls).
    let plan = observed(state, await stage('commit', planCommit({ round: aim })));
    if (aim - ckpt.round >= input.commit.maxRounds) {
      state.event(
        `not committing: the checkpoint was trained for round ${ckpt.round} and round ${aim} is beyond commit.maxRounds (${input.commit.maxRounds})`,
      );
      return { status: 'missed', round: ckpt.round, hotkey: '', reason: state.missedWindows.join('; ') };
    }
    if (plan.commit1.closesAt <= Date.now()) {
      miss(state, `round ${aim}: commit 1 window closed before the checkpoint was ready`);
      continue;
    }
    state.commits = [];
    try {
      state.enter(
        'commit1',
        `round ${plan.round}: commit 1 window opens in ${Math.max(0, Math.round(plan.commit1.opensAt - Date.now()))} ms`,
      );
      show();
      plan = await waitForWindow(state, plan, (p) => p.commit1);
      state.commits.push(
        await stage('commit1', commitSignature({ miner: input.miner, hash: ckpt.hash, window: plan.commit1 })),
      );
      state.enter(
        'commit2',
        `round ${plan.round}: commit 2 window opens in ${Math.max(0, Math.round(plan.commit2.opensAt - Date.now()))} ms`,
      );
      show();
      plan = await waitForWindow(state, plan, (p) => p.commit2);
      state.commits.push(
        await stage(
          'commit2',
          commitLocation({
            miner: input.miner,
            hash: ckpt.hash,
            // Connito's commit 2: the expert group and the repo at the exact revision validators fetch.
            commit: ckpt.hub
              ? { e: ckpt.hub.expertGroup, v: state.globalVer ?? 0, r: ckpt.hub.repo, rv: ckpt.hub.revision }
              : { v: state.globalVer ?? 0 },
            window: plan.commit2,
          }),
        ),
      );
      return plan;
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'CommitOverwrittenError') {
        // Another cycle on this hotkey committed over our commit 1; its hash may not be on chain yet.
        // The score stage reads the commitment the validators saw and reports it as overwritten.
        state.event(`OVERWRITTEN: ${err.message}`);
        return plan;
      }
      if (!(err instanceof ApplicationFailure && err.type === 'MissedWindowError')) throw err;
      miss(state, `round ${plan.round}: ${err.message}`);
      show();
      await sleepUntil(plan.commit2.closesAt); // the round is lost; the next one's windows come after it
    }
  }
}

/** Records a new plan, refusing one from a chain whose head is behind the last plan's. */
function observed(state: CycleState, plan: CommitPlan): CommitPlan {
  const last = state.plan?.atBlock;
  if (last !== undefined && plan.atBlock !== undefined && plan.atBlock < last)
    chainWentBack(`block ${plan.atBlock} now, ${last} when last planned`);
  return (state.plan = plan);
}

/** A chain whose block number went backwards was reset (a devnet restart) or replaced: nothing planned on it holds. */
function chainWentBack(what: string): never {
  throw ApplicationFailure.nonRetryable(
    `the chain went backwards (${what}): was it reset? Nothing planned on it holds; start a new cycle`,
    'ChainResetError',
  );
}

function miss(state: CycleState, what: string): void {
  state.missedWindows.push(what);
  state.event(`MISSED COMMIT WINDOW: ${what}`);
}

function validate(raw: unknown): CycleInput {
  try {
    return parseOrExplain(CycleInputSchema, raw, 'miningCycle input');
  } catch (err) {
    if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInputError');
    throw err;
  }
}

/**
 * When to start a commit: a few blocks before its window's projected opening. The projection
 * comes from the chain's recent block time and can be late; the activity itself waits for the
 * window's first block, so starting early costs nothing and starting late can cost the window.
 */
function startOf(w: CommitWindow): number {
  if (w.startBlock === undefined || w.endBlock === undefined || w.endBlock <= w.startBlock) return w.opensAt;
  const blockMs = (w.closesAt - w.opensAt) / (w.endBlock - w.startBlock);
  return w.opensAt - COMMIT_LEAD_BLOCKS * blockMs;
}

/** A wait for a commit window longer than this is re-planned from the chain on the way. */
const REPLAN_WAIT_MS = 60_000;

/**
 * Sleeps until it is time to start committing into `pick(plan)`. A long wait (training ended early)
 * is halved and the round re-planned from the chain each time: blocks that come faster or slower
 * than when it was planned move the window, and a projection made minutes ago would start the
 * commit late (or a round early). Histories from before it sleep once (patched).
 */
async function waitForWindow(
  state: CycleState,
  plan: CommitPlan,
  pick: (p: CommitPlan) => CommitWindow,
): Promise<CommitPlan> {
  if (patched('replan-while-waiting')) {
    for (let left = startOf(pick(plan)) - Date.now(); left > REPLAN_WAIT_MS; left = startOf(pick(plan)) - Date.now()) {
      await sleep(left / 2);
      plan = observed(state, await stage('commit', planCommit({ round: plan.round })));
    }
  }
  await sleepUntil(startOf(pick(plan)));
  return plan;
}

async function sleepUntil(epochMs: number): Promise<void> {
  const ms = epochMs - Date.now();
  if (ms > 0) await sleep(ms);
}
