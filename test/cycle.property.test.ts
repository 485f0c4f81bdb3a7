// 50 mining cycles on the time-skipping server, each with seeded random faults in every activity
// (slow curation, training, checkpoint hashing, planCommit RPC, commit 1 / commit 2, score) and the
// occasional simulated worker restart (an attempt that fails retryably after its delay, so Temporal
// retries it). For each cycle we work out from the injected delays which commit-1 windows were
// feasible and check the workflow against that: every feasible window hit, every miss recorded with
// its round, only the best trained state ever committed, nothing on chain outside its window.
// The seed is fixed and printed: a failure reproduces with the same seed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkflowClient } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import type { CycleResult } from '../subnets/connito/types';
import { miningCycle } from '../workflows';
import {
  COMMIT_MARGIN_MS,
  createStubActivities,
  hashOfState,
  Scenario,
  SimChain,
  type ActivityName,
} from './helpers/stub-activities';
import { useTimeSkipping, withStubWorkers } from './helpers/time-skipping';

const SEED = Number(process.env.MINERFLOW_PROPERTY_SEED ?? 0x5eed);
const CYCLES = 50;
const BLOCK_MS = 4000; // MinerCommit1 and MinerCommit2 last 40 s each
/** Retry backoff of the commit activities (workflows/cycle.ts: initialInterval 500 ms). */
const COMMIT_RETRY_MS = 500;
/** Windows this close to the edge (ms) are reported, not classified: real milliseconds of activity work add to simulated time. */
const EDGE_MS = 1000;

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Upper bounds of the injected delay per activity attempt (simulated ms), each under its activity's timeouts. */
const MAX_DELAY: Record<ActivityName, number> = {
  preflight: 10_000, // slow chain and store round trips
  checkTrainer: 10_000,
  curateCorpus: 300_000, // slow curation (the stub heartbeats every 20 s)
  planCommit: 5_000, // slow RPC; also called between segments, so it eats training time
  trainSegment: 60_000, // slow data loading before the steps
  lrFind: 0,
  checkpoint: 120_000, // slow hashing: often longer than commit.reserveSeconds (15 s)
  commitSignature: 55_000, // start-to-close 60 s; MinerCommit1 is 40 s (the stub heartbeats: timeout 5 s)
  commitLocation: 30_000,
  awaitScore: 50_000, // heartbeat timeout 1 min
};

/** A cycle's fault plan: the same (activity, call, attempt) always gets the same delay and restart decision. */
function faults(cycleSeed: number) {
  const draw = (activity: ActivityName, call: number, attempt: number, salt: string) =>
    mulberry32(cycleSeed ^ hashString(`${activity}/${call}/${attempt}/${salt}`))();
  return {
    delay: (a: ActivityName, call: number, attempt: number) =>
      Math.round(draw(a, call, attempt, 'delay') * MAX_DELAY[a]),
    // A worker restart on one attempt in ten (first attempts only, so every call ends).
    restart: (a: ActivityName, call: number, attempt: number) =>
      attempt === 1 && draw(a, call, attempt, 'restart') < 0.1,
  };
}

interface WindowVerdict {
  cycle: number;
  round: number;
  feasible: boolean | 'edge';
  hit: boolean;
  why: string;
}

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
useTimeSkipping((t) => ({ env, bundle } = t));

interface Outcome {
  problems: string[];
  /** Known workflow bug (see the todo test below), kept apart so the other properties stay checked. */
  unrecordedBeyondMaxRounds: string[];
  feasible: number;
  hit: number;
}

let outcome: Promise<Outcome> | undefined;

async function runCycles(): Promise<Outcome> {
  const started = Date.now();
  const scenarios = new Map<string, Scenario>();
  const cycles: { i: number; id: string; s: Scenario; maxRounds: number; result?: CycleResult; error?: unknown }[] = [];
  for (let i = 0; i < CYCLES; i++) {
    const cycleSeed = (SEED + i * 0x9e3779b9) >>> 0;
    const rng = mulberry32(cycleSeed);
    const f = faults(cycleSeed);
    const msPerStep = 500 + Math.round(rng() * 1000);
    const s = new Scenario({
      chain: new SimChain(await env.currentTimeMs(), BLOCK_MS),
      msPerStep,
      delay: f.delay,
      restart: f.restart,
    });
    const id = `property-${SEED}-${i}`;
    scenarios.set(id, s);
    cycles.push({ i, id, s, maxRounds: 1 + Math.floor(rng() * 2) });
  }
  await withStubWorkers(env, bundle, createStubActivities(env, scenarios), async () => {
    const handles = await Promise.all(
      cycles.map((c) =>
        env.client.workflow.start(miningCycle, {
          taskQueue: TASK_QUEUES.control,
          workflowId: c.id,
          args: [{ training: { steps: 2000, segmentSteps: 200 }, commit: { maxRounds: c.maxRounds } }],
        }),
      ),
    );
    // One unlock for all the waits: env.client's result() unlocks and re-locks time skipping per
    // call, and 50 of those at once unbalance the server's lock counter (IllegalStateException:
    // "Unbalanced lock and unlock calls"). A plain client's result() leaves the lock alone.
    const plain = new WorkflowClient({ connection: env.connection, namespace: env.client.options.namespace });
    const testService = env.connection.testService!;
    await testService.unlockTimeSkipping({});
    try {
      await Promise.all(
        handles.map(async (h, k) => {
          try {
            cycles[k]!.result = await plain.getHandle(h.workflowId).result();
          } catch (error) {
            cycles[k]!.error = error;
          }
        }),
      );
    } finally {
      await testService.lockTimeSkipping({});
    }
  });

  const verdicts: WindowVerdict[] = [];
  const reasons = new Map<string, number>();
  const problems: string[] = [];
  const unrecordedBeyondMaxRounds: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  for (const c of cycles) {
    const tag = `cycle ${c.i} (${c.id}, maxRounds ${c.maxRounds})`;
    if (!c.result) {
      problems.push(`${tag} failed: ${String((c.error as Error)?.cause ?? c.error)}`);
      continue;
    }
    const { s, result } = c;
    const { chain } = s;
    // The best trained state (lowest finite held-out loss, never step 0) is what must be committed.
    const trained = s.trains
      .map((t) => t.result)
      .filter((r) => Number.isFinite(r.heldOutLoss) && !r.nonFinite && r.endStep > 0);
    const best = trained.reduce((a, b) => (b.heldOutLoss < a.heldOutLoss ? b : a));
    check(s.checkpoints.length === 1, `${tag}: ${s.checkpoints.length} checkpoints`);
    const ckpt = s.checkpoints[0]!;
    check(ckpt.state.key === best.state.key, `${tag}: checkpointed ${ckpt.state.key}, best is ${best.state.key}`);
    check(ckpt.state.step > 0, `${tag}: checkpointed the base state`);
    for (const m of chain.commitments) {
      check(m.hash === hashOfState(best.state.key), `${tag}: committed ${m.hash}, not the best state`);
      check(
        m.round - ckpt.round < c.maxRounds,
        `${tag}: committed in round ${m.round}, checkpoint of round ${ckpt.round}, maxRounds ${c.maxRounds}`,
      );
      const w = m.phase === 'commit1' ? chain.commit1Blocks(m.round) : chain.commit2Blocks(m.round);
      check(
        m.block >= w.start && m.block < w.end,
        `${tag}: ${m.phase} of round ${m.round} at block ${m.block}, outside [${w.start}, ${w.end})`,
      );
    }
    for (const m of result.missedWindows) {
      const kind = /closed before the checkpoint was ready/.test(m)
        ? 'checkpoint late'
        : /commit1 window/.test(m)
          ? 'commit 1 late'
          : /commit2 window/.test(m)
            ? 'commit 2 late'
            : 'other';
      reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
    }
    // Each round the checkpoint may be committed in, until one was fully committed.
    const committedRound = chain.commitments.some((m) => m.phase === 'commit2')
      ? chain.commitments.find((m) => m.phase === 'commit2')!.round
      : undefined;
    const lastRound = committedRound ?? ckpt.round + c.maxRounds - 1;
    for (let round = ckpt.round; round <= lastRound; round++) {
      const c1 = chain.commit1Blocks(round);
      const opensAt = chain.originMs + c1.start * BLOCK_MS;
      const closesAt = chain.originMs + c1.end * BLOCK_MS;
      const hit = chain.commitments.some((m) => m.phase === 'commit1' && m.round === round);
      const call = s.callsOf('commitSignature').find((k) => k.round === round);
      let v: WindowVerdict;
      const ownDelay = (i: number) =>
        s.delayFor('commitSignature', i, 1) +
        (s.restartFor('commitSignature', i, 1) ? COMMIT_RETRY_MS + s.delayFor('commitSignature', i, 2) : 0);
      if (!call) {
        // Not attempted: the plan after the checkpoint skipped it. Feasible only if the commit (the
        // call it would have been) still fitted, with the planner's margin (COMMIT_MARGIN_MS).
        const readyAt = s.plans.filter((p) => p.atMs >= ckpt.atMs)[0]?.atMs ?? Infinity;
        const end =
          Math.max(opensAt, readyAt) +
          ownDelay(s.callsOf('commitSignature').filter((k) => k.round! < round).length) +
          COMMIT_MARGIN_MS;
        v = {
          cycle: c.i,
          round,
          feasible: end < closesAt - EDGE_MS ? true : end < closesAt + EDGE_MS ? 'edge' : false,
          hit,
          why: `checkpoint ready ${readyAt - opensAt} ms after the window opened, commit would end at ${end - opensAt} ms`,
        };
      } else {
        // The workflow starts commit 1 three blocks before the window (the activity then waits for its
        // first block); the transaction lands in the block after the head, so it must be sent before
        // the window's last block begins.
        const plan = s.plans.filter((p) => p.plan.round === round && p.atMs >= ckpt.atMs).at(-1)!;
        const start = Math.max(opensAt - 3 * BLOCK_MS, plan.atMs);
        const end = start + ownDelay(call.callIndex);
        const lastSend = closesAt - BLOCK_MS;
        v = {
          cycle: c.i,
          round,
          feasible: end < lastSend - EDGE_MS ? true : end < lastSend + EDGE_MS ? 'edge' : false,
          hit,
          why: `commit 1 would be sent ${end - opensAt} ms after the window opened (${closesAt - opensAt} ms long)`,
        };
      }
      verdicts.push(v);
      if (v.feasible === true) check(hit, `${tag}: feasible commit-1 window of round ${round} missed (${v.why})`);
      if (v.feasible === false) check(!hit, `${tag}: infeasible commit-1 window of round ${round} hit (${v.why})`);
      const committed = committedRound === round;
      if (!committed && !result.missedWindows.some((m) => new RegExp(`round ${round}\\b`).test(m))) {
        const what = `${tag}: round ${round} not committed but not in missedWindows ${JSON.stringify(result.missedWindows)} (${v.why})`;
        // The bug: the plan after the checkpoint is already beyond commit.maxRounds, and the cycle
        // gives up before recording the round it missed.
        const lastPlan = s.plans.at(-1)?.plan.round ?? -1;
        if (!call && lastPlan - ckpt.round >= c.maxRounds) unrecordedBeyondMaxRounds.push(what);
        else problems.push(what);
      }
    }
    if (committedRound === undefined) {
      check(result.score.status === 'missed', `${tag}: nothing committed but score ${result.score.status}`);
      check(
        chain.commitments.every((m) => m.phase === 'commit1'),
        `${tag}: a commit 2 without a committed round`,
      );
    } else {
      check(
        result.score.status === 'scored' && result.score.round === committedRound,
        `${tag}: committed in round ${committedRound}, score ${JSON.stringify(result.score)}`,
      );
    }
  }

  const feasible = verdicts.filter((v) => v.feasible === true);
  const hit = feasible.filter((v) => v.hit).length;
  const missed = verdicts.filter((v) => !v.hit).length;
  const edge = verdicts.filter((v) => v.feasible === 'edge');
  const restarts = cycles.reduce((a, c) => a + c.s.calls.filter((k) => k.outcome === 'restart').length, 0);
  const why = [...reasons].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  console.log(
    `property: ${CYCLES} cycles, windows feasible=${feasible.length} hit=${hit} missed=${missed} (reasons: ${why}; not recorded ${unrecordedBeyondMaxRounds.length}); ` +
      `edge=${edge.length}${edge.length ? ` (hit ${edge.filter((v) => v.hit).length})` : ''}, worker restarts=${restarts}, seed=${SEED}, wall ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  assert.ok(feasible.length > 0 && missed > 0, 'the fault mix must produce both hits and misses');
  return { problems, unrecordedBeyondMaxRounds, feasible: feasible.length, hit };
}

test(`property: ${CYCLES} cycles with seeded random delays and worker restarts (seed ${SEED})`, async () => {
  const o = await (outcome ??= runCycles());
  assert.deepEqual(o.problems, []);
  assert.equal(o.hit, o.feasible);
});

// Found by this suite: when the checkpoint was ready only after commit 1 of its round had closed and
// the next round was already beyond commit.maxRounds, the cycle gave up before recording the miss.
test('property: every missed round is recorded, also when the next round is beyond commit.maxRounds', async () => {
  const o = await (outcome ??= runCycles());
  assert.deepEqual(o.unrecordedBeyondMaxRounds, []);
});
