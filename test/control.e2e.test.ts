// Durable control of running cycles on the real Temporal dev server (pause/resume/extend and the
// windows arithmetic are covered on the time-skipping environment, test/cycle.timeskip.test.ts): a
// planted LR spike and the backtrack it causes, a gpu worker killed mid-segment, and training cut
// to make the commit windows (or a commit so slow it misses them, reported as such).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { phaseWindow, parsePhases } from '../subnets/connito/phases';
import { TASK_QUEUES } from '../common/queues';
import type { CommitWindow } from '../subnets/connito/types';
import { controlActivities } from './helpers/activities';
import { openChain, openStore } from '../infra/runtime';
import { miningCycle, statusQuery } from '../workflows';
import { disconnectAllChains } from '../infra/chain/subtensor';
import { startTestDevnet } from './helpers/devnet';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { recordHistory, runCycle, spawnWorker, waitFor, withWorkers, useTemporal } from './helpers/temporal';

// A long Train phase (44 s at 200 ms blocks) so these tests steer training, not race the window.
const LONG_PHASES =
  'Distribute:2,Train:220,MinerCommit1:10,MinerCommit2:10,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';
const long = testSettings({ MINERFLOW_LOCAL_PHASES: LONG_PHASES, MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
const corpus = { path: 'sample:brown:ar' };
const curateOpts = { heldOutFraction: 0.1 };
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;

useTemporal(long, (t) => ({ env, bundle } = t));

const steady = { patience: 100, backtrackThreshold: 10 }; // these tests steer by hand; keep the policy out of the way

test(
  'a planted LR spike degrades held-out loss; the cycle backtracks to the best state and commits it',
  { timeout: 240_000 },
  async () => {
    const input = {
      ...SMALL_CYCLE,
      corpus,
      curate: curateOpts,
      training: {
        ...SMALL_CYCLE.training,
        steps: 160,
        segmentSteps: 40,
        drill: { lrSpikeSegment: 3, lrSpikeFactor: 1000 },
      },
      policy: { patience: 100, backtrackThreshold: 0.05, lrBackoff: 0.5, maxBacktracks: 2 },
      commit: { minTrainSeconds: 15, reserveSeconds: 1 },
    };
    const workflowId = `backtrack-${Date.now()}`;
    const result = await runCycle(env, bundle, long, workflowId, input);
    const bestBeforeSpike = Math.min(...result.segments.filter((s) => s.segment < 3).map((s) => s.heldOutLoss));
    const spiked = result.segments.find((s) => s.segment === 3)!;
    assert.ok(
      !(spiked.heldOutLoss <= bestBeforeSpike + 0.05),
      `the spike should degrade held-out loss (${spiked.heldOutLoss} vs ${bestBeforeSpike})`,
    );
    const backtrack = result.decisions.find((d) => d.action === 'backtrack');
    assert.ok(backtrack, JSON.stringify(result.decisions));
    assert.equal(backtrack.afterSegment, 3);
    assert.match(backtrack.reason, /worse than the best|non-finite/);
    const bestSeg = result.segments
      .filter((s) => s.segment < 3)
      .reduce((a, b) => (b.heldOutLoss < a.heldOutLoss ? b : a));
    assert.match(backtrack.reason, new RegExp(`restoring the best state \\(step ${bestSeg.endStep},`));
    assert.equal(backtrack.restoreStep, bestSeg.endStep);
    const after = result.segments.find((s) => s.segment === 4)!;
    assert.equal(after.startStep, bestSeg.endStep, 'training continued from the best state');
    assert.ok(
      result.checkpoint.heldOutLoss <= bestBeforeSpike + 1e-9,
      `committed ${result.checkpoint.heldOutLoss}, best before the spike ${bestBeforeSpike}`,
    );
    await recordHistory(env, long, workflowId, 'backtrack');
  },
);

test(
  'a gpu worker killed (SIGKILL) mid-segment: the segment is retried from its start state on a new worker and the cycle commits',
  { timeout: 240_000 },
  async () => {
    const input = {
      ...SMALL_CYCLE,
      corpus,
      curate: curateOpts,
      // Bigger batches make each 60-step segment last seconds, long enough to be caught mid-way.
      training: { ...SMALL_CYCLE.training, steps: 180, segmentSteps: 60, batchSize: 64, heartbeatTimeoutSeconds: 3 },
      policy: steady,
      commit: { minTrainSeconds: 25, reserveSeconds: 1 },
    };
    const workflowId = `kill-${Date.now()}`;
    const startGpu = () => spawnWorker('gpu', env, long);
    let gpu = startGpu();
    let killedAt: { segment: number; step: number } | undefined;
    try {
      const result = await withWorkers(
        env,
        bundle,
        long,
        async () => {
          const handle = await env.client.workflow.start(miningCycle, {
            taskQueue: TASK_QUEUES.control,
            workflowId,
            args: [input],
          });
          // Wait until segment 2 is visibly under way, then kill its worker without warning.
          killedAt = await waitFor('segment 2 in progress', async () => {
            const desc = await handle.describe();
            const a = (desc.raw.pendingActivities ?? []).find((p) => p.activityType?.name === 'trainSegment');
            const payload = a?.heartbeatDetails?.payloads?.[0];
            if (!payload) return undefined;
            const d = defaultPayloadConverter.fromPayload(payload as never) as {
              stage: string;
              segment: number;
              step: number;
            };
            return d.stage === 'training' && d.segment === 2 && d.step >= 65
              ? { segment: d.segment, step: d.step }
              : undefined;
          });
          gpu.kill('SIGKILL');
          gpu = startGpu();
          return handle.result();
        },
        { gpu: false },
      );
      assert.ok(killedAt, 'killedAt');
      assert.equal(result.score.status, 'scored', 'the cycle committed and was scored');
      const retried = result.segments.filter((s) => s.attempt > 1);
      assert.equal(retried.length, 1, 'exactly one segment was retried');
      assert.equal(retried[0].segment, 2);
      assert.equal(retried[0].startStep, 60, 'the retry resumed from the state saved before the crash');
      const redone = killedAt.step - retried[0].startStep;
      assert.ok(redone > 0 && redone <= input.training.segmentSteps, `re-done ${redone} steps: at most one segment`);
      const last = result.segments.at(-1)!.endStep;
      assert.equal(
        result.segments.reduce((a, s) => a + s.endStep - s.startStep, 0),
        last,
        'completed segments cover each step once',
      );
      result.segments.forEach(
        (s, i) =>
          i > 0 &&
          assert.equal(s.startStep, result.segments[i - 1].endStep, 'each segment continues where the last ended'),
      );
      await recordHistory(env, long, workflowId, 'gpu-worker-killed');
    } finally {
      gpu.kill('SIGKILL');
    }
  },
);

test(
  'a control worker killed (SIGKILL) mid-cycle loses nothing: another one carries the cycle to its end',
  { timeout: 240_000 },
  async () => {
    const input = {
      ...SMALL_CYCLE,
      corpus,
      curate: curateOpts,
      training: { ...SMALL_CYCLE.training, steps: 120, segmentSteps: 30 },
      policy: steady,
      // Windows here are 10 blocks (2 s): a replacement worker that starts slowly on a busy host may
      // miss one, which is recorded and retried in the next round, not lost.
      commit: { minTrainSeconds: 15, reserveSeconds: 1, maxRounds: 4 },
    };
    const workflowId = `control-killed-${Date.now()}`;
    let control = spawnWorker('control', env, long);
    try {
      const result = await withWorkers(
        env,
        bundle,
        long,
        async () => {
          const handle = await env.client.workflow.start(miningCycle, {
            taskQueue: TASK_QUEUES.control,
            workflowId,
            args: [input],
          });
          await waitFor(
            'two segments',
            async () => ((await handle.query(statusQuery)).segments.length >= 2 ? true : undefined),
            120_000,
          );
          control.kill('SIGKILL');
          await new Promise((r) => setTimeout(r, 1000));
          control = spawnWorker('control', env, long);
          return handle.result();
        },
        { control: false },
      );
      assert.ok(result.segments.length >= 2, 'result.segments.length >= 2');
      assert.ok(
        result.segments.every((s) => s.attempt === 1),
        'no training segment was re-run',
      );
      result.segments.forEach(
        (s, i) => i > 0 && assert.equal(s.startStep, result.segments[i - 1].endStep, 'no segment was lost'),
      );
      // Carried to its end: scored, or (a host too slow for every 2 s window) each round's miss recorded.
      if (result.score.status !== 'scored') {
        assert.equal(result.score.status, 'missed', JSON.stringify(result.score));
        assert.equal(result.missedWindows.length, input.commit.maxRounds, result.missedWindows.join('; '));
        for (const m of result.missedWindows) assert.match(m, /^round \d+: /);
      }
    } finally {
      control.kill('SIGKILL');
    }
  },
);

test(
  'training is cut short so that commit 1 and commit 2 land inside their windows',
  { timeout: 240_000 },
  async (t) => {
    const fast = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' }); // 13.6 s cycles
    const devnet = await startTestDevnet(fast);
    // A devnet of its own (these settings have their own data folder); its connections go with it.
    t.after(async () => {
      await disconnectAllChains();
      await devnet.close();
    });
    const input = {
      ...SMALL_CYCLE,
      corpus,
      curate: curateOpts,
      training: { ...SMALL_CYCLE.training, steps: 1_000_000, segmentSteps: 40, warmupSteps: 5 },
      policy: steady,
      commit: { minTrainSeconds: 3, reserveSeconds: 3 },
    };
    const workflowId = `windows-${Date.now()}`;
    const result = await runCycle(env, bundle, fast, workflowId, input);
    assert.ok(result.segments.at(-1)!.stoppedEarly, 'training stopped at the deadline, far short of 1,000,000 steps');
    assert.match(result.decisions.at(-1)!.reason, /deadline reached/);
    const phases = parsePhases(fast.chain.local.phases.map((p) => `${p.name}:${p.blocks}`).join(','));
    const round = result.score.round;
    const c1 = phaseWindow({ origin: 0, phases }, round, 'MinerCommit1');
    const c2 = phaseWindow({ origin: 0, phases }, round, 'MinerCommit2');
    const [first, second] = result.commits;
    assert.ok(
      first.block >= c1.start && first.block < c1.end,
      `commit 1 at block ${first.block}, window [${c1.start}, ${c1.end})`,
    );
    assert.ok(
      second.block >= c1.end && second.block < c2.end,
      `commit 2 at block ${second.block}, window [${c1.end}, ${c2.end})`,
    );
    assert.deepEqual(result.missedWindows, []);
    assert.equal(result.score.status, 'scored');
    await recordHistory(env, fast, workflowId, 'commit-windows');
  },
);

test(
  'a commit too slow for its window is reported as missed, loudly, and never committed late',
  { timeout: 240_000 },
  async (t) => {
    const fast = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
    const devnet = await startTestDevnet(fast);
    // A devnet of its own (these settings have their own data folder); its connections go with it.
    t.after(async () => {
      await disconnectAllChains();
      await devnet.close();
    });
    const real = controlActivities(fast, openStore(fast.store), () => openChain(fast));
    const chain = await openChain(fast);
    const slowCommit = async (input: { window: CommitWindow } & Parameters<typeof real.commitSignature>[0]) => {
      // A stuck signer: it comes back only once the window's last block is made.
      while ((await chain.blockNumber()) + 1 < input.window.endBlock!) await new Promise((r) => setTimeout(r, 100));
      return real.commitSignature(input);
    };
    const input = {
      ...SMALL_CYCLE,
      corpus,
      curate: curateOpts,
      policy: steady,
      commit: { minTrainSeconds: 4, reserveSeconds: 0.5, maxRounds: 2 },
    };
    const workflowId = `missed-${Date.now()}`;
    const result = await runCycle(env, bundle, fast, workflowId, input, { overrides: { commitSignature: slowCommit } });
    assert.equal(result.score.status, 'missed');
    assert.equal(result.missedWindows.length, 2, JSON.stringify(result.missedWindows));
    assert.match(
      result.missedWindows[0],
      /commit1 window of round \d+ \(blocks \d+–\d+\) closed: the next block is \d+/,
    );
    assert.deepEqual(result.commits, [], 'nothing was committed outside a window');
    const { address } = await import('../infra/wallet').then((w) =>
      w.loadHotkey(fast.walletsDir, 'default', 'default'),
    );
    assert.equal(await chain.commitment(address, 102), null, 'the chain holds no commitment from this cycle');
    await recordHistory(env, fast, workflowId, 'missed-window');
  },
);
