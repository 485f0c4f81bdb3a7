// Mining cycles with the `command` trainer driving the PyTorch miner (miners/torch), on the real
// Temporal dev server and devnet: scored by the devnet's validator; the deadline stopping the
// trainer in time for commit 1; a SIGKILLed trainer resumed from its latest checkpoint; a SIGKILLed
// gpu worker leaving no trainer behind (process table) and its segment resumed by another worker;
// a backtrack restarting from the earlier checkpoint with the lower LR; one process kept alive across
// every segment.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import { openStore } from '../infra/runtime';
import { hashSafetensorsFile } from '../model/hash';
import { checkpointKey } from '../subnets/connito/commitments';
import type { CycleResult } from '../subnets/connito/types';
import { torchMinerTrainer } from '../trainers/command';
import { miningCycle, statusQuery } from '../workflows';
import { testSettings } from './helpers/settings';
import { spawnWorker, useTemporal, waitFor, withWorkers } from './helpers/temporal';

const PYTHON = path.join(__dirname, '..', '.tools', 'venv-torch', 'bin', 'python');
// 200 ms blocks: 40 s of training, 20 s commit windows (room for a kill and a restart).
const PHASES =
  'Distribute:2,Train:200,MinerCommit1:100,MinerCommit2:100,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';
const settings = testSettings({ MINERFLOW_LOCAL_PHASES: PHASES, MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
const store = openStore(settings.store);
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;

useTemporal(settings, (t) => ({ env, bundle } = t));

const trainer = {
  ...torchMinerTrainer({ python: PYTHON, checkpointInterval: 200 }),
  stop: { sigintGraceSeconds: 2, sigtermGraceSeconds: 1 },
};
/** Training runs until the deadline stops it: more steps than the window holds. */
const UNTIL_DEADLINE = {
  trainer,
  corpus: { path: 'sample:brown:ar' },
  curate: { heldOutFraction: 0.1 },
  model: { seqLen: 32, dModel: 32, nLayer: 2, nHead: 2, tokenizer: 'bytes' as const, moe: { experts: 4, topK: 2 } },
  training: {
    steps: 100_000,
    // Segments of a few seconds: between them the cycle re-plans its deadline from the chain's
    // blocks (a devnet on a loaded host makes them unevenly, and a deadline computed once drifts).
    segmentSteps: 400,
    batchSize: 8,
    learningRate: 5e-3,
    warmupSteps: 5,
    heartbeatTimeoutSeconds: 10,
  },
  // Kept for what follows training: evaluation, export and hashing (each evaluation and the
  // export start Python, seconds apiece on this loaded 2-core host).
  commit: { minTrainSeconds: 4, reserveSeconds: 10 },
  eval: { maxTokens: 4096 },
  score: { timeoutSeconds: 120, pollSeconds: 0.5 },
};

function trainerProcesses(runId: string): { pid: number; args: string }[] {
  const needle = path.join(settings.dataDir, 'work', 'command', runId);
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && m[2].includes(needle) && m[2].includes('train.py'))
    .map((m) => ({ pid: Number(m[1]), args: m[2] }));
}

async function checkpointsIn(dir: string): Promise<number[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return names
    .map((n) => /^globalver_\d+_inneropt_(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

async function assertScoredAndPublished(result: CycleResult, events: string[] = []): Promise<void> {
  assert.deepEqual(result.missedWindows, [], events.join('\n'));
  assert.equal(result.score.status, 'scored', JSON.stringify(result.score));
  assert.ok(Number.isFinite(result.score.validatorLoss!), 'Number.isFinite(result.score.validatorLoss!)');
  assert.ok(result.checkpoint.heldOutLoss < result.checkpoint.baselineLoss - 0.5, JSON.stringify(result.checkpoint));
  const stored = await store.get(`${checkpointKey(result.checkpoint.hash)}/model.safetensors`);
  assert.equal(await hashSafetensorsFile(stored), result.checkpoint.hash);
  assert.ok(
    result.segments.every((s) => s.backend === 'command'),
    "result.segments.every((s) => s.backend === 'command')",
  );
}

function start(workflowId: string, input: unknown) {
  return env.client.workflow.start(miningCycle, { taskQueue: TASK_QUEUES.control, workflowId, args: [input] });
}

test(
  "a cycle with the command trainer: the deadline stops the PyTorch miner in time for commit 1, and the devnet's validator scores its checkpoint",
  { timeout: 360_000 },
  async () => {
    const workflowId = `cmd-cycle-${Date.now()}`;
    const { result, events } = await withWorkers(env, bundle, settings, async () => {
      const handle = await start(workflowId, UNTIL_DEADLINE);
      const result = await handle.result();
      return { result, events: (await handle.query(statusQuery)).events };
    });
    await assertScoredAndPublished(result, events);
    const last = result.segments.at(-1)!;
    assert.ok(
      last.stoppedEarly,
      `the last segment was stopped by the deadline: ${JSON.stringify(result.decisions.at(-1))}`,
    );
    assert.ok(last.endStep > 0 && last.endStep < 100_000, 'last.endStep > 0 && last.endStep < 100_000');
    assert.deepEqual(trainerProcesses(workflowId), []);
    assert.equal(result.commits[0].phase, 'commit1');
  },
);

test(
  'a cycle with the trainer kept alive (trainer.keepAlive): one PyTorch process trains every segment, the deadline stops it, and the checkpoint is scored',
  { timeout: 360_000 },
  async () => {
    const workflowId = `cmd-kept-${Date.now()}`;
    const input = {
      ...UNTIL_DEADLINE,
      trainer: { ...trainer, keepAlive: { idleSeconds: 15 } },
      training: { ...UNTIL_DEADLINE.training, segmentSteps: 200 }, // its checkpoints, every 200 steps, end each one
    };
    const { result, events } = await withWorkers(env, bundle, settings, async () => {
      const handle = await start(workflowId, input);
      const result = await handle.result();
      return { result, events: (await handle.query(statusQuery)).events };
    });
    await assertScoredAndPublished(result, events);
    const segments = result.segments.length;
    assert.ok(segments >= 3, `${segments} segments`);
    assert.ok(result.segments.at(-1)!.stoppedEarly, JSON.stringify(result.decisions.at(-1)));
    // A process is started in a folder of its own. The first served every segment; only the last
    // may have needed another (the deadline stopped the first between segments, then a re-plan
    // from the chain moved it later).
    const started = (await fs.readdir(path.join(settings.dataDir, 'work', 'command', workflowId)))
      .filter((n) => n.startsWith('live-segment-'))
      .sort();
    assert.equal(started[0], 'live-segment-1');
    assert.deepEqual(started.slice(1), started.length > 1 ? [`live-segment-${segments}`] : [], events.join('\n'));
    assert.deepEqual(trainerProcesses(workflowId), []);
  },
);

test(
  'SIGKILL of the trainer mid-run: the segment is retried from its latest checkpoint and the cycle still commits and is scored',
  { timeout: 360_000 },
  async () => {
    const workflowId = `cmd-trainer-kill-${Date.now()}`;
    const attempt1 = path.join(
      settings.dataDir,
      'work',
      'command',
      workflowId,
      'segment-1',
      'attempt-1',
      'checkpoints',
    );
    const { result, killedAfter, events } = await withWorkers(env, bundle, settings, async () => {
      const handle = await start(workflowId, UNTIL_DEADLINE);
      const killedAfter = await waitFor(
        'a checkpoint of the running trainer',
        async () => {
          const steps = await checkpointsIn(attempt1);
          const [proc] = trainerProcesses(workflowId);
          if (!steps.length || !proc) return undefined;
          process.kill(proc.pid, 'SIGKILL');
          return steps.at(-1)!;
        },
        120_000,
      );
      const result = await handle.result();
      return { result, killedAfter, events: (await handle.query(statusQuery)).events };
    });
    await assertScoredAndPublished(result, events);
    const seg = result.segments[0];
    assert.equal(seg.attempt, 2, 'the crashed attempt was retried');
    assert.equal(seg.startStep, 0);
    // The retry started from attempt 1's checkpoint (restored into its output folder), not from scratch.
    const attempt2 = path.join(
      settings.dataDir,
      'work',
      'command',
      workflowId,
      'segment-1',
      'attempt-2',
      'checkpoints',
    );
    const restored = (await checkpointsIn(attempt2))[0];
    assert.ok(
      restored >= killedAfter,
      `attempt 2 started from step ${restored}; attempt 1 had a checkpoint at ${killedAfter}`,
    );
    const metrics = (
      await fs.readFile(await store.get(`runs/${workflowId}/command/segment-1/metrics-attempt-2.jsonl`), 'utf8')
    )
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number });
    assert.ok(
      metrics[0].step > restored,
      `attempt 2's first step ${metrics[0].step} follows the checkpoint at ${restored}`,
    );
  },
);

test(
  'SIGKILL of the gpu worker: no trainer process is left (process table), and another worker resumes the segment from its latest checkpoint',
  { timeout: 360_000 },
  async () => {
    const workflowId = `cmd-worker-kill-${Date.now()}`;
    const attempt1 = path.join(
      settings.dataDir,
      'work',
      'command',
      workflowId,
      'segment-1',
      'attempt-1',
      'checkpoints',
    );
    let gpu = spawnWorker('gpu', env, settings);
    try {
      const { result, killedAfter } = await withWorkers(
        env,
        bundle,
        settings,
        async () => {
          const handle = await start(workflowId, UNTIL_DEADLINE);
          const killedAfter = await waitFor(
            'a checkpoint of the running trainer',
            // Published to the store: what a worker that dies can hand on (its local disk is lost with it).
            async () =>
              (await store.exists(`runs/${workflowId}/command/segment-1/latest.json`)) &&
              trainerProcesses(workflowId).length
                ? (await checkpointsIn(attempt1))[0]
                : undefined,
            120_000,
          );
          gpu.kill('SIGKILL');
          await waitFor(
            'the trainer to end with its worker',
            async () => (trainerProcesses(workflowId).length ? undefined : true),
            15_000,
          );
          assert.deepEqual(trainerProcesses(workflowId), [], 'no trainer outlives its worker');
          gpu = spawnWorker('gpu', env, settings);
          return { result: await handle.result(), killedAfter };
        },
        { gpu: false },
      );
      await assertScoredAndPublished(result);
      const seg = result.segments[0];
      assert.ok(seg.attempt >= 2, `attempt ${seg.attempt}`);
      const retried = path.join(
        settings.dataDir,
        'work',
        'command',
        workflowId,
        'segment-1',
        `attempt-${seg.attempt}`,
        'checkpoints',
      );
      const restored = (await checkpointsIn(retried))[0];
      assert.ok(
        restored >= killedAfter,
        `the retry started from step ${restored}; the killed attempt had ${killedAfter}`,
      );
    } finally {
      gpu.kill('SIGKILL');
    }
  },
);

test(
  'a backtrack restarts the trainer from the earlier checkpoint with the lower LR written into its config',
  { timeout: 360_000 },
  async () => {
    const workflowId = `cmd-backtrack-${Date.now()}`;
    const input = {
      ...UNTIL_DEADLINE,
      training: {
        ...UNTIL_DEADLINE.training,
        steps: 90,
        segmentSteps: 30,
        drill: { lrSpikeSegment: 2, lrSpikeFactor: 200 }, // segment 2 at LR × 200 (1.0): held-out loss gets worse
      },
      policy: { backtrackThreshold: 0.01, lrBackoff: 0.5, maxBacktracks: 1 },
    };
    const result = await withWorkers(env, bundle, settings, async () => (await start(workflowId, input)).result());
    await assertScoredAndPublished(result);
    const bt = result.decisions.find((d) => d.action === 'backtrack');
    assert.ok(bt, `decisions: ${JSON.stringify(result.decisions)}`);
    const after = result.segments.find((s) => s.segment === bt.afterSegment + 1)!;
    assert.equal(after.startStep, result.segments[0].endStep, 'restarted from segment 1’s checkpoint');
    const config = await fs.readFile(
      path.join(
        settings.dataDir,
        'work',
        'command',
        workflowId,
        `segment-${after.segment}`,
        'attempt-1',
        'config.yaml',
      ),
      'utf8',
    );
    assert.match(config, new RegExp(`"lr": ${input.training.learningRate * 0.5}\\b`));
  },
);
