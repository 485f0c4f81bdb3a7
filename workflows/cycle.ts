// The mining cycle: curate → train → checkpoint → commit (two phases) → await score.
// Deterministic orchestration only: every stage is an activity with its own timeout and retries;
// the state lives in CycleState; people read it through the `status` query or the UI.
import {
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities, GpuActivities } from '../activities';
import { CycleInputSchema, InvalidInputError, parseOrExplain, type CycleInput } from '../common/config';
import { TASK_QUEUES } from '../common/queues';
import type { CommitPlan, CycleResult, CycleStatus } from '../common/types';
import { CycleState } from './cycle-state';

export const statusQuery = defineQuery<CycleStatus>('status');

const { curateCorpus } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2s', maximumAttempts: 5 },
});
const { planCommit } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10 },
});
// Commits retry fast: a window is minutes long; the activity fails for good once it has closed.
const { commitSignature, commitLocation } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '60s',
  retry: { initialInterval: '500ms', backoffCoefficient: 1.5, maximumInterval: '5s', maximumAttempts: 30 },
});
const { awaitScore } = proxyActivities<ControlActivities>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5s', maximumAttempts: 10 },
});
// Training heartbeats every step: a dead gpu worker is noticed within the heartbeat timeout and
// the attempt moves to another worker on the queue.
const { train } = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5s', maximumAttempts: 5 },
});
const { checkpoint } = proxyActivities<GpuActivities>({
  taskQueue: TASK_QUEUES.gpu,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '5 minutes',
  retry: { initialInterval: '5s', maximumAttempts: 5 },
});

/** How many later rounds to try if a commit window is missed, before failing the cycle. */
const MAX_COMMIT_ROUNDS = 2;

export async function miningCycle(rawInput: unknown): Promise<CycleResult> {
  const state = new CycleState();
  setHandler(statusQuery, () => state.status());
  const show = () => setCurrentDetails(state.details());
  const input = validate(rawInput);
  const runId = workflowInfo().workflowId;
  try {
    state.enter('curate', `curating ${input.corpus.path}`);
    show();
    const dataset = (state.dataset = await stage('curate', curateCorpus({ corpus: input.corpus, curate: input.curate })));

    state.enter('train', `training ${input.training.steps} steps on ${TASK_QUEUES.gpu}`);
    show();
    const trained = (state.training = await stage('train', train({ runId, dataset, model: input.model, training: input.training })));

    state.enter('checkpoint', `trained to loss ${trained.trainLoss.toFixed(4)}; evaluating and publishing`);
    show();
    const ckpt = (state.checkpoint = await stage('checkpoint', checkpoint({ runId, dataset, trained, model: input.model, eval: input.eval })));

    const plan = await commitTwoPhase(input, ckpt.hash, ckpt.location, state, show);

    state.enter('awaitScore', `waiting for the validators' score of round ${plan.round}`);
    show();
    state.score = await stage(
      'awaitScore',
      awaitScore({ miner: input.miner, round: plan.round, validateStartBlock: plan.validateStartBlock, ...input.score }),
    );
    state.enter('done', `score: ${state.score.status}${state.score.incentiveShare !== undefined ? `, incentive share ${state.score.incentiveShare}` : ''}`);
    show();
    return { workflowId: runId, hotkey: state.score.hotkey, dataset, training: trained, checkpoint: ckpt, commits: state.commits, score: state.score };
  } catch (err) {
    state.enter('failed', err instanceof Error ? err.message : String(err));
    show();
    throw err;
  }
}

/** Commit 1 inside MinerCommit1, commit 2 after it and before MinerCommit2 ends; a missed round moves to the next. */
async function commitTwoPhase(input: CycleInput, hash: string, location: string, state: CycleState, show: () => void): Promise<CommitPlan> {
  for (let attempt = 1; ; attempt++) {
    const plan = (state.plan = await stage('commit', planCommit()));
    state.commits = [];
    try {
      state.enter('commit1', `round ${plan.round}: commit 1 window opens in ${Math.max(0, plan.commit1.opensAt - Date.now())} ms`);
      show();
      await sleepUntil(plan.commit1.opensAt);
      state.commits.push(await stage('commit1', commitSignature({ miner: input.miner, hash, window: plan.commit1 })));
      state.enter('commit2', `round ${plan.round}: commit 2 window opens in ${Math.max(0, plan.commit2.opensAt - Date.now())} ms`);
      show();
      await sleepUntil(plan.commit2.opensAt);
      state.commits.push(await stage('commit2', commitLocation({ miner: input.miner, hash, location, window: plan.commit2 })));
      return plan;
    } catch (err) {
      const missed = err instanceof ApplicationFailure && err.type === 'MissedWindowError';
      if (!missed || attempt >= MAX_COMMIT_ROUNDS) throw err;
      state.event(`MISSED commit window in round ${plan.round}: ${err.message}; trying round ${plan.round + 1}`);
    }
  }
}

function validate(raw: unknown): CycleInput {
  try {
    return parseOrExplain(CycleInputSchema, raw, 'miningCycle input');
  } catch (err) {
    if (err instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInputError');
    throw err;
  }
}

/** Awaits an activity; a permanent failure becomes the cycle's failure, named by stage, type and message. */
async function stage<T>(name: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.create({ message: `${name} failed: ${err.cause.message}`, type: err.cause.type ?? undefined, nonRetryable: true, cause: err });
    }
    throw err;
  }
}

async function sleepUntil(epochMs: number): Promise<void> {
  const ms = epochMs - Date.now();
  if (ms > 0) await sleep(ms);
}
