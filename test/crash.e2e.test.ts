// Crashes at the worst moments, on the real Temporal dev server and devnet, with workers in their
// own processes: a control worker SIGKILLed 100 ms into a commit activity, replaced 5 s later, must
// not cost the round: the retry starts on the heartbeat timeout (seconds), not the start-to-close
// timeout (60 s, longer than the window), and sends the commitment once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { TASK_QUEUES } from '../common/queues';
import type { Devnet } from '../infra/devnet/server';
import { loadHotkey } from '../infra/wallet';
import { decodeLocationCommit, decodeSignatureCommit } from '../subnets/connito/commitments';
import { parsePhases, phaseWindow } from '../subnets/connito/phases';
import { miningCycle, statusQuery } from '../workflows';
import type { CommitWindow } from '../subnets/connito/types';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { spawnWorker, useTemporal, waitFor } from './helpers/temporal';

// 200 ms blocks; commit windows of 30 s (finney: 10 blocks of 12 s), each holding a kill, the 5 s
// heartbeat timeout, a replacement worker starting up (~11 s on a busy 2-core host: it transpiles
// and bundles the workflows) and the retry.
const PHASES =
  'Distribute:2,Train:20,MinerCommit1:150,MinerCommit2:150,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';
const settings = testSettings({ MINERFLOW_LOCAL_PHASES: PHASES, MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let devnet: Devnet;

useTemporal(settings, (t) => {
  env = t.env;
  devnet = t.devnet!;
});

/** Every set_commitment this hotkey signed, with the block it landed in, from the devnet's blocks. */
function commitmentsSigned(address: string): { block: number; payload: string }[] {
  const out: { block: number; payload: string }[] = [];
  for (let b = devnet.chain.head(); b && b.number > 0; b = devnet.chain.block(b.header.parentHash.toHex())!) {
    for (const hex of b.extrinsics) {
      const x = devnet.chain.registry.createType('Extrinsic', hex);
      if (
        x.isSigned &&
        x.signer.toString() === address &&
        x.method.section === 'commitments' &&
        x.method.method === 'setCommitment'
      ) {
        const info = (x.method.args[1] as unknown as { fields: { value: { toU8a(bare: boolean): Uint8Array } }[] })
          .fields;
        out.unshift({
          block: b.number,
          payload: Buffer.concat(info.map((f) => Buffer.from(f.value.toU8a(true)))).toString('utf8'),
        });
      }
    }
  }
  return out;
}

const { PENDING_ACTIVITY_STATE_STARTED } = temporal.api.enums.v1.PendingActivityState;
const { TIMEOUT_TYPE_HEARTBEAT } = temporal.api.enums.v1.TimeoutType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (polling every 50 ms) until a worker has started `activity`, then SIGKILLs `worker` 100 ms
 * after that start. Gives up once the chain's head is past `window`: by then the commit is moot.
 */
async function killDuring(
  handle: WorkflowHandle,
  activity: string,
  window: CommitWindow,
  worker: ChildProcess,
): Promise<{ pid: number; killedAt: number; afterStartMs: number; headAtKill: number }> {
  for (;;) {
    const desc = await handle.describe();
    const a = (desc.raw.pendingActivities ?? []).find((p) => p.activityType?.name === activity);
    if (a?.state === PENDING_ACTIVITY_STATE_STARTED && a.lastStartedTime) {
      const startedAt = tsToMs(a.lastStartedTime);
      await sleep(Math.max(0, startedAt + 100 - Date.now()));
      worker.kill('SIGKILL');
      const killedAt = Date.now();
      return { pid: worker.pid!, killedAt, afterStartMs: killedAt - startedAt, headAtKill: devnet.chain.head().number };
    }
    if (desc.status.name !== 'RUNNING')
      throw new Error(`the cycle ended (${desc.status.name}) before ${activity} started`);
    if (devnet.chain.head().number >= window.endBlock!)
      throw new Error(
        `${activity} never started before its window (blocks ${window.startBlock}–${window.endBlock! - 1}) closed`,
      );
    await sleep(50);
  }
}

/** The attempt that completed `activity` (scheduled once), from the history: number, worker and the failure before it. */
function completedAttempt(history: temporal.api.history.v1.IHistory, activity: string) {
  const events = history.events ?? [];
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity);
  assert.equal(scheduled.length, 1, `${activity} was scheduled once`);
  const id = scheduled[0].eventId!.toString();
  const startedEvent = events.find((e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === id);
  const started = startedEvent?.activityTaskStartedEventAttributes;
  const completed = events.some((e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === id);
  assert.ok(started && completed, `${activity} completed`);
  return {
    attempt: started.attempt ?? 0,
    startedAt: tsToMs(startedEvent!.eventTime),
    identity: started.identity ?? '',
    lastFailure: started.lastFailure,
  };
}

test(
  'control worker SIGKILLed 100 ms into commit 1 and again into commit 2, each replaced 5 s later: each commit is sent once, inside its window, and the round is scored',
  { timeout: 360_000 },
  async (t) => {
    const input = {
      ...SMALL_CYCLE,
      corpus: { path: 'sample:brown:ar' },
      curate: { heldOutFraction: 0.1 },
      commit: { minTrainSeconds: 4, reserveSeconds: 1 },
    };
    const { address } = await loadHotkey(settings.walletsDir, 'default', 'default');
    // The gpu worker in its own process too: training in this process would stall the devnet's
    // block timer, and commits planned from that slow rate would start well inside their windows.
    const gpu = spawnWorker('gpu', env, settings);
    let control = spawnWorker('control', env, settings);
    try {
      const handle = await env.client.workflow.start(miningCycle, {
        taskQueue: TASK_QUEUES.control,
        workflowId: `crash-commits-${Date.now()}`,
        args: [input],
      });
      const plan = await waitFor(
        'the commit-1 phase',
        async () => {
          const s = await handle.query(statusQuery);
          return s.phase === 'commit1' ? s.plan! : undefined;
        },
        120_000,
      );
      const kills = [];
      for (const [activity, window] of [
        ['commitSignature', plan.commit1],
        ['commitLocation', plan.commit2],
      ] as const) {
        kills.push({ activity, ...(await killDuring(handle, activity, window, control)) });
        await sleep(5000);
        control = spawnWorker('control', env, settings);
      }
      const result = await handle.result();
      const history = await handle.fetchHistory();

      assert.deepEqual(result.missedWindows, [], 'no window reported missed');
      assert.equal(result.score.round, plan.round, 'the round scored is the one planned when commit 1 began');
      assert.equal(result.score.status, 'scored', JSON.stringify(result.score));

      // On chain: each commit sent once (a retry that re-sent would show twice), inside its window.
      const signed = commitmentsSigned(address);
      const c1 = signed.filter((c) => decodeSignatureCommit(c.payload));
      const c2 = signed.filter((c) => decodeLocationCommit(c.payload));
      assert.equal(c1.length, 1, `commit 1 was sent once: ${JSON.stringify(c1)}`);
      assert.equal(c2.length, 1, `commit 2 was sent once: ${JSON.stringify(c2)}`);
      const schedule = { origin: 0, phases: parsePhases(PHASES) };
      const w1 = phaseWindow(schedule, plan.round, 'MinerCommit1');
      const w2 = phaseWindow(schedule, plan.round, 'MinerCommit2');
      assert.ok(
        c1[0].block >= w1.start && c1[0].block < w1.end,
        `commit 1 at block ${c1[0].block}, MinerCommit1 [${w1.start}, ${w1.end})`,
      );
      assert.ok(
        c2[0].block >= w1.end && c2[0].block < w2.end,
        `commit 2 at block ${c2[0].block}, after MinerCommit1 [${w1.start}, ${w1.end}) and before MinerCommit2 ends (${w2.end})`,
      );
      assert.deepEqual(
        result.commits.map((c) => [c.phase, c.block, c.payload]),
        [
          ['commit1', c1[0].block, c1[0].payload],
          ['commit2', c2[0].block, c2[0].payload],
        ],
        'the receipts are the commitments that landed',
      );

      // The kills mattered: each commit completed on a later attempt, by a replacement worker, after
      // the killed attempt's heartbeat timeout (not its 60 s start-to-close timeout).
      for (const k of kills) {
        const done = completedAttempt(history, k.activity);
        t.diagnostic(
          `${k.activity}: worker ${k.pid} killed ${k.afterStartMs} ms after the start, at block ${k.headAtKill}; attempt ${done.attempt} started ${done.startedAt - k.killedAt} ms after the kill`,
        );
        assert.ok(done.attempt >= 2, `${k.activity} was retried (completed on attempt ${done.attempt})`);
        assert.ok(
          !done.identity.startsWith(`${k.pid}@`),
          `${k.activity} completed on a replacement, not on the killed worker ${k.pid}`,
        );
        assert.equal(
          done.lastFailure?.timeoutFailureInfo?.timeoutType,
          TIMEOUT_TYPE_HEARTBEAT,
          `${k.activity}'s killed attempt ended on its heartbeat timeout: ${JSON.stringify(done.lastFailure)}`,
        );
      }
    } finally {
      control.kill('SIGKILL');
      gpu.kill('SIGKILL');
    }
  },
);
