// miningCycle on Temporal's time-skipping test server with stubbed activities (test/helpers/
// stub-activities.ts): commit windows as block ranges, missed windows, backtracking, pause / resume /
// extend, the policy, and which state gets committed. Hours of chain time pass in seconds of wall
// time; nothing here depends on how fast the machine is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { startCycle } from '../cli/cycle';
import { TASK_QUEUES } from '../common/queues';
import { CycleInputSchema, cycleWorkflowId } from '../subnets/connito/config';
import type { CycleResult, CycleStatus } from '../subnets/connito/types';
import {
  extendTrainingUpdate,
  minerLoop,
  miningCycle,
  pauseSignal,
  resumeSignal,
  statusQuery,
  stopTrainingSignal,
} from '../workflows';
import {
  createStubActivities,
  defaultHeldOutLoss,
  hashOfState,
  Scenario,
  SimChain,
  type ScenarioOptions,
} from './helpers/stub-activities';
import { advanceUntil, sendUpdate, useTimeSkipping, withStubWorkers } from './helpers/time-skipping';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
useTimeSkipping((t) => ({ env, bundle } = t));

const scenarios = new Map<string, Scenario>();
let seq = 0;

type Handle = Awaited<ReturnType<TestWorkflowEnvironment['client']['workflow']['start']>>;

/** Runs one cycle with `input` (the real schema's defaults plus overrides) in a fresh scenario. */
async function cycle(
  name: string,
  input: Record<string, unknown>,
  opts: Omit<ScenarioOptions, 'chain'> & { blockMs?: number } = {},
  during?: (h: Handle, s: Scenario) => Promise<void>,
): Promise<{ s: Scenario; result?: CycleResult; error?: unknown }> {
  const workflowId = `${name}-${++seq}`;
  const s = new Scenario({ ...opts, chain: new SimChain(await env.currentTimeMs(), opts.blockMs) });
  scenarios.set(workflowId, s);
  return withStubWorkers(env, bundle, createStubActivities(env, scenarios), async () => {
    const h = await env.client.workflow.start(miningCycle, {
      taskQueue: TASK_QUEUES.control,
      workflowId,
      args: [input],
    });
    if (during) {
      // A test that fails half-way must not leave its workflow running: its in-flight activity would
      // hold the server's time-skipping lock and make every later test wait in real time.
      await during(h, s).catch(async (err) => {
        await h.terminate('test failed').catch(() => undefined);
        throw err;
      });
    }
    try {
      return { s, result: await h.result() };
    } catch (error) {
      return { s, error };
    }
  });
}

/** Held-out loss that still improves at every segment: the policy never stops early. */
const IMPROVING = { loss: ({ endStep }: { endStep: number }) => ({ heldOutLoss: 5 - endStep / 1000 }) };

function ok(r: { result?: CycleResult; error?: unknown }): CycleResult {
  if (!r.result) throw r.error;
  return r.result;
}

/** The state with the lowest finite held-out loss among the segments actually trained (never step 0). */
function bestTrained(s: Scenario) {
  return s.trains
    .map((t) => t.result)
    .filter((r) => Number.isFinite(r.heldOutLoss) && !r.nonFinite && r.endStep > 0)
    .reduce((a, b) => (b.heldOutLoss < a.heldOutLoss ? b : a));
}

function status(h: Handle): Promise<CycleStatus> {
  return h.query(statusQuery);
}

test('a. commit 1 lands inside MinerCommit1, commit 2 after it and before MinerCommit2 ends', async () => {
  // 12 s blocks, Connito's phases: round 0's MinerCommit1 is blocks [320, 330), MinerCommit2 [330, 340).
  const r = await cycle(
    'windows',
    { training: { steps: 300, segmentSteps: 100 } },
    { delay: (a) => (a === 'commitSignature' ? 30_000 : a === 'commitLocation' ? 50_000 : 0) },
  );
  const result = ok(r);
  const { chain } = r.s;
  assert.deepEqual(chain.commit1Blocks(0), { start: 320, end: 330 });
  assert.deepEqual(chain.commit2Blocks(0), { start: 330, end: 340 });
  // The workflow starts each commit 3 blocks (36 s) before its window; a transaction lands in the
  // block after the head. The stub's 30 s of signing put commit 1 in the window's first block (320);
  // commit 2's 50 s, 14 s past the window's opening, in block 332.
  assert.deepEqual(
    chain.commitments.map((c) => ({ phase: c.phase, round: c.round, block: c.block })),
    [
      { phase: 'commit1', round: 0, block: 320 },
      { phase: 'commit2', round: 0, block: 332 },
    ],
  );
  assert.deepEqual(
    result.commits.map((c) => [c.phase, c.block]),
    [
      ['commit1', 320],
      ['commit2', 332],
    ],
  );
  for (const c of chain.commitments) {
    const w = c.phase === 'commit1' ? chain.commit1Blocks(c.round) : chain.commit2Blocks(c.round);
    assert.ok(c.block >= w.start && c.block < w.end, `${c.phase} at block ${c.block} outside [${w.start}, ${w.end})`);
  }
  // Training stopped in time: the plan's deadline is commit 1's opening minus commit.reserveSeconds.
  assert.equal(result.training.steps, 300);
  assert.ok(
    r.s.trains.every((t) => t.endMs <= chain.originMs + 320 * 12_000 - 15_000),
    'r.s.trains.every((t) => t.endMs <= chain.originMs + 320 * 12_000 - 15_000)',
  );
  assert.equal(result.score.status, 'scored');
  assert.equal(result.score.round, 0);
  assert.deepEqual(result.missedWindows, []);
});

test('b. a commit too slow for commit 1 is recorded as a miss; maxRounds 1 ends missed with nothing on chain', async () => {
  // 3 s blocks: MinerCommit1 lasts 30 s; the signature takes 45 s (inside its 60 s start-to-close).
  const r = await cycle(
    'miss-1',
    { training: { steps: 200, segmentSteps: 100 }, commit: { maxRounds: 1 } },
    { blockMs: 3000, delay: (a) => (a === 'commitSignature' ? 45_000 : 0) },
  );
  const result = ok(r);
  assert.equal(result.missedWindows.length, 1, result.missedWindows.join(' | '));
  // Started 3 blocks (9 s) before block 320, 45 s of signing: the head is then block 332.
  assert.equal(
    result.missedWindows[0],
    'round 0: commit1 failed: commit1 window of round 0 (blocks 320–329) closed: the next block is 333',
  );
  assert.equal(result.score.status, 'missed');
  assert.match(result.score.reason ?? '', /round 0/);
  assert.deepEqual(r.s.chain.commitments, [], 'nothing may be committed after the miss');
  assert.deepEqual(result.commits, []);
  assert.deepEqual(
    r.s.callsOf('commitSignature').map((c) => c.outcome),
    ['missed'],
  );
  assert.deepEqual(r.s.callsOf('commitLocation'), []);
});

// Found by this suite: the missed score used to name the next round (state.plan.round after the last
// re-plan), a round the cycle never tried.
test('b. the missed score names the missed round (0), not the next round it did not try', async () => {
  const r = await cycle(
    'miss-round',
    { training: { steps: 200, segmentSteps: 100 }, commit: { maxRounds: 1 } },
    { blockMs: 3000, delay: (a) => (a === 'commitSignature' ? 45_000 : 0) },
  );
  const result = ok(r);
  assert.equal(result.score.status, 'missed');
  assert.equal(result.score.round, 0);
});

test('b. maxRounds 2: after missing round 0, a fast second attempt commits in round 1', async () => {
  const r = await cycle(
    'miss-2',
    { training: { steps: 200, segmentSteps: 100 }, commit: { maxRounds: 2 } },
    { blockMs: 3000, delay: (a, call) => (a === 'commitSignature' && call === 0 ? 45_000 : 0) },
  );
  const result = ok(r);
  const { chain } = r.s;
  assert.equal(result.missedWindows.length, 1);
  assert.equal(
    result.missedWindows[0],
    'round 0: commit1 failed: commit1 window of round 0 (blocks 320–329) closed: the next block is 333',
  );
  assert.deepEqual(chain.commit1Blocks(1), { start: 820, end: 830 });
  assert.deepEqual(
    chain.commitments.map((c) => ({ phase: c.phase, round: c.round, block: c.block })),
    [
      { phase: 'commit1', round: 1, block: 820 },
      { phase: 'commit2', round: 1, block: 830 },
    ],
  );
  assert.equal(result.score.status, 'scored');
  assert.equal(result.score.round, 1);
  // The same checkpoint (trained for round 0) is committed one round late, as commit.maxRounds allows.
  assert.equal(result.checkpoint.round, 0);
  assert.ok(
    chain.commitments.every((c) => c.hash === result.checkpoint.hash),
    'chain.commitments.every((c) => c.hash === result.checkpoint.hash)',
  );
});

test('c. a loss spike in segment 3 backtracks; segment 4 starts from the best state; the best is committed', async () => {
  const r = await cycle(
    'backtrack',
    { training: { steps: 500, segmentSteps: 100 } },
    {
      loss: ({ segment, attempt }) =>
        segment === 3 && attempt === 1 ? { heldOutLoss: defaultHeldOutLoss(200) + 1 } : undefined,
    },
  );
  const result = ok(r);
  const d3 = result.decisions.find((d) => d.afterSegment === 3)!;
  assert.equal(d3.action, 'backtrack', d3.reason);
  assert.equal(d3.restoreStep, 200);
  assert.equal(d3.lrScale, 0.5);
  const seg2 = r.s.trains.find((t) => t.segment === 2)!.result;
  const seg4 = r.s.trains.find((t) => t.segment === 4)!;
  assert.equal(seg4.fromStep, 200);
  assert.equal(
    seg4.fromKey,
    seg2.state.key,
    'segment 4 resumes from segment 2 (the best), not from the spiked segment 3',
  );
  assert.equal(seg4.lrScale, 0.5);
  assert.deepEqual(
    r.s.trains.map((t) => [t.segment, t.fromStep, t.result.endStep]),
    [
      [1, 0, 100],
      [2, 100, 200],
      [3, 200, 300],
      [4, 200, 300],
      [5, 300, 400],
      [6, 400, 500],
    ],
  );
  const best = bestTrained(r.s);
  assert.equal(best.segment, 6);
  assert.equal(r.s.checkpoints.length, 1);
  assert.equal(r.s.checkpoints[0]!.state.key, best.state.key);
  assert.ok(
    r.s.chain.commitments.every((c) => c.hash === hashOfState(best.state.key)),
    'r.s.chain.commitments.every((c) => c.hash === hashOfState(best.state.key))',
  );
});

test('d. pause / resume / extend: nothing trains while paused, extend adds exactly N steps, too much is refused', async () => {
  let pausedAt = 0;
  let resumedAt = 0;
  let trainsWhenPaused = 0;
  const r = await cycle('pause', { training: { steps: 300, segmentSteps: 100 } }, {}, async (h, s) => {
    await advanceUntil(env, 'segment 1', async () => ((await status(h)).segments.length >= 1 ? true : undefined));
    await h.signal(pauseSignal);
    const paused = await advanceUntil(env, 'the pause', async () => {
      const st = await status(h);
      return st.phase === 'paused' ? st : undefined;
    });
    pausedAt = await env.currentTimeMs();
    trainsWhenPaused = s.trains.length;
    assert.equal(paused.segments.length, trainsWhenPaused);
    await env.sleep(20 * 60_000); // 20 minutes of chain time
    const still = await status(h);
    assert.equal(still.phase, 'paused');
    assert.equal(still.segments.length, trainsWhenPaused, 'no segment may run while paused');
    assert.equal(s.callsOf('trainSegment').length, trainsWhenPaused);

    assert.deepEqual(await h.executeUpdate(extendTrainingUpdate, { args: [{ steps: 50 }] }), { plannedSteps: 350 });
    // 100 000 steps at 1 s each end long after commit 1 of round 0 (sendUpdate: see why in its comment).
    await assert.rejects(
      sendUpdate(env, h.workflowId, extendTrainingUpdate.name, { steps: 100_000 }),
      /^Error: (extendTraining rejected: 100000 more steps would end training at .*, after the deadline .* for commit 1|update extendTraining rejected \(stage)/,
    );
    assert.equal((await status(h)).plannedSteps, 350);
    resumedAt = await env.currentTimeMs();
    await h.signal(resumeSignal);
  });
  const result = ok(r);
  assert.ok(resumedAt - pausedAt >= 20 * 60_000, 'resumedAt - pausedAt >= 20 * 60_000');
  for (const t of r.s.trains)
    assert.ok(t.startMs < pausedAt || t.startMs >= resumedAt, `segment ${t.segment} ran while paused`);
  assert.equal(result.training.plannedSteps, 350);
  assert.equal(result.training.steps, 350);
  assert.equal(result.training.stepsRun, 350);
  assert.deepEqual(
    r.s.trains.map((t) => t.result.endStep),
    [100, 200, 300, 350],
  );
  assert.equal(result.decisions.at(-1)!.action, 'finish');
});

test('d. training.fitToDeadline: the planned steps follow the deadline, so the schedule ends there instead of being cut off', async () => {
  // 12 s blocks: training must stop by commit 1's opening (block 320) minus reserveSeconds 15 = 3825 s,
  // and at 1 s per step about 3800 steps fit. steps 100 000 is only an upper bound here.
  const training = { steps: 100_000, segmentSteps: 500 };
  const deadlineOf = (s: Scenario) => s.chain.originMs + 320 * 12_000 - 15_000;
  const fitted = await cycle('fit', { training: { ...training, fitToDeadline: true } }, IMPROVING, async (h) => {
    await advanceUntil(env, 'segment 1', async () => ((await status(h)).segments.length >= 1 ? true : undefined));
    await assert.rejects(
      sendUpdate(env, h.workflowId, extendTrainingUpdate.name, { steps: 10 }),
      /^Error: (extendTraining rejected: training.fitToDeadline is on|update extendTraining rejected \(stage)/,
    );
  });
  const result = ok(fitted);
  const trains = fitted.s.trains;
  const deadline = deadlineOf(fitted.s);
  // Segment 1 measures the speed; from then on the plan is what fits before the deadline.
  assert.equal(trains[0]!.plannedSteps, 100_000);
  for (const t of trains.slice(1)) {
    assert.ok(t.plannedSteps < 100_000, `segment ${t.segment} planned ${t.plannedSteps}`);
    assert.ok(
      t.startMs + (t.plannedSteps - t.fromStep) * 1000 <= deadline,
      `segment ${t.segment}: ${t.plannedSteps} planned steps from step ${t.fromStep} end after the deadline`,
    );
  }
  const last = trains.at(-1)!;
  assert.equal(last.result.endStep, last.plannedSteps, 'the last segment ends where the schedule ends');
  assert.equal(last.result.stoppedEarly, false);
  assert.ok(deadline - last.endMs < 0.05 * (deadline - trains[0]!.startMs), 'the plan used the time it had');
  assert.equal(result.decisions.at(-1)!.action, 'finish');
  assert.equal(result.score.status, 'scored');

  // Without it, the same cycle trains at the peak of a 100 000-step schedule until the deadline stops it.
  const cut = await cycle('nofit', { training }, IMPROVING);
  ok(cut);
  assert.ok(
    cut.s.trains.every((t) => t.plannedSteps === 100_000),
    'cut.s.trains.every((t) => t.plannedSteps === 100_000)',
  );
  assert.equal(cut.s.trains.at(-1)!.result.stoppedEarly, true);
});

test('one cycle per hotkey: a second cycle on the hotkey is refused, and a minerLoop waits until the running one ends', async () => {
  const input = { training: { steps: 200, segmentSteps: 100 } };
  const parsed = CycleInputSchema.parse(input);
  const id = cycleWorkflowId(parsed.miner);
  const s = new Scenario({ chain: new SimChain(await env.currentTimeMs()) });
  scenarios.set(id, s);
  await withStubWorkers(env, bundle, createStubActivities(env, scenarios), async () => {
    const first = await startCycle(env.client, input, parsed, undefined);
    const firstRunId = (await first.describe()).runId;
    const firstRun = env.client.workflow.getHandle(id, firstRunId);
    await assert.rejects(
      startCycle(env.client, input, parsed, undefined),
      /a cycle for hotkey default\.default on netuid 102 is already running: miningCycle-102-default\.default/,
    );
    // The loop's cycles take the hotkey's id too: its first try finds the hotkey busy and waits.
    const loop = await env.client.workflow.start(minerLoop, {
      taskQueue: TASK_QUEUES.control,
      workflowId: `loop-${++seq}`,
      args: [{ cycle: input, cycles: 1 }],
    });
    const carry = await loop.result();
    const firstResult = (await firstRun.result()) as CycleResult;
    assert.equal(firstResult.score.status, 'scored');
    assert.ok(
      carry.scores.some((x) => x.status === 'busy'),
      JSON.stringify(carry.scores),
    );
    const ran = carry.scores.filter((x) => x.status !== 'busy');
    assert.deepEqual(
      ran.map((x) => [x.workflowId, x.status]),
      [[id, 'scored']],
    );
    assert.equal(carry.completed, 1);
    // Never side by side: the loop's cycle started after the hand-started one had closed.
    const firstEnd = (await firstRun.describe()).closeTime!;
    const loopCycle = await env.client.workflow.getHandle(id).describe();
    assert.notEqual(loopCycle.runId, firstRunId);
    assert.ok(loopCycle.startTime >= firstEnd, `${loopCycle.startTime.toISOString()} < ${firstEnd.toISOString()}`);
  });
});

test('e. policy: no improvement for policy.patience evaluations stops early and commits the best', async () => {
  const r = await cycle(
    'patience',
    { training: { steps: 1000, segmentSteps: 100 }, policy: { patience: 2 } },
    { loss: ({ segment }) => ({ heldOutLoss: segment === 1 ? 3 : 3.0005 }) },
  );
  const result = ok(r);
  assert.deepEqual(
    result.decisions.map((d) => d.action),
    ['continue', 'continue', 'earlyStop'],
  );
  assert.match(result.decisions[2]!.reason, /no held-out improvement for 2 evaluations \(policy.patience 2\)/);
  assert.equal(r.s.trains.length, 3);
  assert.equal(r.s.checkpoints[0]!.state.key, r.s.trains[0]!.result.state.key);
  assert.equal(result.training.steps, 100);
});

test('e. policy: the stopTraining signal finishes after the running segment and commits the best so far', async () => {
  const r = await cycle('stop', { training: { steps: 1000, segmentSteps: 100 } }, {}, async (h) => {
    await advanceUntil(env, 'segment 2', async () => ((await status(h)).segments.length >= 2 ? true : undefined));
    await h.signal(stopTrainingSignal);
  });
  const result = ok(r);
  const n = r.s.trains.length;
  assert.ok(n >= 2 && n < 10, `${n} segments`);
  assert.deepEqual(result.decisions.at(-1), {
    afterSegment: n,
    action: 'finish',
    reason: 'stop requested by the operator',
  });
  assert.equal(r.s.checkpoints[0]!.state.key, bestTrained(r.s).state.key);
  assert.equal(result.training.steps, n * 100);
  assert.equal(result.score.status, 'scored');
});

test('f. a NaN segment is never committed: the committed checkpoint is the best finite state', async () => {
  const r = await cycle(
    'nan',
    { training: { steps: 400, segmentSteps: 100 } },
    {
      loss: ({ segment, attempt }) =>
        segment === 2 && attempt === 1
          ? { heldOutLoss: NaN, trainLoss: NaN, nonFinite: true, skippedBatches: 8 }
          : undefined,
    },
  );
  const result = ok(r);
  assert.equal(result.decisions[1]!.action, 'backtrack');
  const nan = r.s.trains.find((t) => t.segment === 2)!.result;
  const best = bestTrained(r.s);
  assert.notEqual(best.state.key, nan.state.key);
  assert.equal(r.s.checkpoints.length, 1);
  assert.equal(r.s.checkpoints[0]!.state.key, best.state.key);
  assert.ok(r.s.checkpoints[0]!.state.step > 0, 'r.s.checkpoints[0]!.state.step > 0');
  assert.deepEqual(new Set(r.s.chain.commitments.map((c) => c.hash)), new Set([hashOfState(best.state.key)]));
});

test('f. no time to train (0 steps before the deadline): the base state is never checkpointed nor committed', async () => {
  // Round 0's commit 1 opens at block 320 (3840 s); at 10 000 s a step not one step fits before the deadline.
  const r = await cycle('base', { training: { steps: 300, segmentSteps: 100 } }, { msPerStep: 10_000_000 });
  assert.ok(
    r.error instanceof WorkflowFailedError,
    `${String(r.error)} ${JSON.stringify({ decisions: r.result?.decisions, segs: r.s.trains.map((t) => [t.fromStep, t.result.endStep, t.result.stoppedEarly]), ckpt: r.result?.checkpoint.steps, commits: r.s.chain.commitments.length })}`,
  );
  assert.match(
    String((r.error as WorkflowFailedError).cause?.message),
    /no training segment produced a finite held-out loss/,
  );
  assert.equal(r.s.trains.length, 1);
  assert.equal(r.s.trains[0]!.result.endStep, 0);
  assert.equal(r.s.trains[0]!.result.stoppedEarly, true);
  assert.deepEqual(r.s.checkpoints, []);
  assert.deepEqual(r.s.chain.commitments, []);
});

test('a validator that refused the checkpoint: the cycle ends rejected with the reason, in the result, the events and the UI', async () => {
  const reason = 'checkpoint hash 5f0870a6 differs from the committed 9c1e22b4';
  let details = '';
  let events: string[] = [];
  const r = await cycle(
    'rejected',
    { training: { steps: 200, segmentSteps: 100 } },
    { score: () => ({ status: 'rejected', reason, incentiveShare: 0, validatorLoss: undefined, rank: undefined }) },
    async (h) => {
      await h.result(); // lets the server skip time; a closed workflow still answers queries
      // The Temporal Web UI's "current details" panel.
      details = ((await h.query('__temporal_workflow_metadata')) as { currentDetails?: string }).currentDetails ?? '';
      events = (await status(h)).events;
    },
  );
  const result = ok(r);
  assert.equal(result.score.status, 'rejected');
  assert.equal(result.score.reason, reason);
  assert.match(events.at(-1)!, new RegExp(`score: rejected, incentive share 0 \\(${reason}\\)$`));
  assert.match(details, new RegExp(`\\*\\*score:\\*\\* rejected, incentive share 0, validator loss - \\(${reason}\\)`));
});

test('the training deadline follows the chain: blocks slowing to 15 s (or speeding up to 10 s) mid-training move it later (earlier), and commit 1 still lands in MinerCommit1', async () => {
  // At 12 s blocks round 0's commit 1 opens at block 320 (3840 s), so training stops by 3825 s
  // (reserveSeconds 15). From block 50 (600 s, in segment 2) the chain makes a block every 15 s (10 s):
  // block 320 then comes at 600 + 270 × 15 = 4650 s (3300 s). The re-plan after segment 2 (1000 s)
  // sees 26 (40) blocks at the new rate, more than the 20 the block time is measured over.
  const firstDeadline = 320 * 12_000 - 15_000;
  // IMPROVING: the policy trains until the deadline.
  for (const blockMs of [15_000, 10_000]) {
    const r = await cycle(
      `drift-${blockMs}`,
      { training: { steps: 100_000, segmentSteps: 500 } },
      IMPROVING,
      async (_h, s) => s.chain.slowDown(s.chain.originMs + 600_000, blockMs),
    );
    const result = ok(r);
    const { chain, trains } = r.s;
    const since = (ms: number) => ms - chain.originMs;
    const deadline = since(chain.timeOfBlock(320)) - 15_000;
    assert.equal(deadline, 600_000 + 270 * blockMs - 15_000);
    // Segments 1 and 2 were sent the deadline planned at 12 s blocks; every later one the chain's.
    assert.ok(trains.length > 3, `${trains.length} segments`);
    assert.deepEqual(
      trains.map((t) => since(t.stopAt!)),
      trains.map((_, i) => (i < 2 ? firstDeadline : deadline)),
    );
    // Training ran up to the moved deadline: past the first plan's when the chain slowed, short of it
    // when it sped up (training to 3825 s would have missed a window that closes at block 330, 3400 s).
    const end = since(trains.at(-1)!.endMs);
    const late = trains.filter((t) => since(t.endMs) > deadline);
    assert.deepEqual(
      late.map((t) => ({
        segment: t.segment,
        attempt: t.attempt,
        stopAt: since(t.stopAt!),
        startMs: since(t.startMs),
        endMs: since(t.endMs),
      })),
      [],
      `segments ending after the deadline ${deadline} ms (block ${blockMs} ms)`,
    );
    assert.ok(deadline - end < 500_000, `training ended at ${end} ms, a segment or more before ${deadline}`);
    if (blockMs > 12_000) assert.ok(end > firstDeadline, `training ended at ${end} ms, not after ${firstDeadline}`);
    const c1 = chain.commitments.find((c) => c.phase === 'commit1');
    assert.ok(c1, 'commit 1 was made');
    assert.equal(c1.round, 0);
    assert.ok(c1.block >= 320 && c1.block < 330, `commit 1 at block ${c1.block}`);
    assert.deepEqual(result.missedWindows, []);
    assert.equal(result.score.status, 'scored');
    assert.equal(result.score.round, 0);
  }
});

test('a long wait for commit 1 is re-planned from the chain: blocks that speed up meanwhile do not make the cycle miss its window', async () => {
  // Training ends at ~200 s; at 12 s blocks commit 1 of round 0 opens at block 320 (3840 s). From
  // 400 s the chain makes a block every 8 s: block 320 comes at ~2700 s, and a single sleep to the
  // first projection would wake after the window (blocks 320–329) had closed.
  const r = await cycle('wait-replan', { training: { steps: 200, segmentSteps: 100 } }, {}, async (_h, s) =>
    s.chain.slowDown(s.chain.originMs + 400_000, 8_000),
  );
  const result = ok(r);
  const { chain } = r.s;
  assert.deepEqual(result.missedWindows, []);
  const c1 = chain.commitments.find((c) => c.phase === 'commit1')!;
  assert.equal(c1.round, 0);
  assert.ok(c1.block >= 320 && c1.block < 330, `commit 1 at block ${c1.block}`);
  assert.ok(
    chain.timeOfBlock(c1.block) - chain.originMs < 3_000_000,
    'at the faster chain’s time, not the first projection',
  );
  const replans = r.s.plans.filter((p) => p.args.round === 0);
  assert.ok(replans.length >= 3, `${replans.length} plans of round 0: the wait was re-planned`);
  assert.equal(result.score.status, 'scored');
});

test('a chain that goes backwards (a reset devnet) fails the cycle by name instead of training for, or committing into, rounds that no longer exist', async () => {
  // 2 s steps: a segment takes 200 s (~17 blocks). Reset after segment 2 (the last plan saw block ~33):
  // the re-plan after segment 3 sees block ~16.
  const r = await cycle('reset', { training: { steps: 400, segmentSteps: 100 } }, { msPerStep: 2000 }, async (h, s) => {
    await advanceUntil(env, 'segment 2', async () => ((await status(h)).segments.length >= 2 ? true : undefined));
    s.chain.reset(await env.currentTimeMs());
  });
  assert.ok(r.error instanceof WorkflowFailedError, String(r.error));
  assert.match(
    String(r.error.cause?.message),
    /the chain went backwards \(block \d+ now, \d+ when last planned\): was it reset\?/,
  );
  assert.equal((r.error.cause as { type?: string }).type, 'ChainResetError');
  assert.deepEqual(r.s.chain.commitments, [], 'nothing committed on the reset chain');
});
