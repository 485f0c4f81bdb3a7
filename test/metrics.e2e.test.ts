// Metrics during a real cycle: both workers run as their own processes (workers/control.ts and
// workers/gpu.ts, the entry points operators start), each serving /metrics on a free port that it
// lists for Prometheus under the data folder. The test finds them there, as Prometheus' file_sd
// would, scrapes while the cycle trains and commits, and checks the fleet's search attributes with
// the Temporal CLI.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { TASK_QUEUES } from '../common/queues';
import { miningCycle, statusQuery } from '../workflows';
import { metricsTargets, scrape, valueOf, type Sample } from './helpers/prometheus';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { recordHistory, spawnWorker, useTemporal, waitFor } from './helpers/temporal';

// 200 ms blocks; 20 s commit windows, so a busy machine still makes them.
const PHASES =
  'Distribute:2,Train:60,MinerCommit1:100,MinerCommit2:100,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';
const settings = testSettings({ MINERFLOW_LOCAL_PHASES: PHASES, MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;

useTemporal(settings, (t) => {
  env = t.env;
});

const ME = { subnet: 'connito', hotkey: 'default/default' };

test(
  'a real cycle: the training-loss series moves and the commit counters rise on the workers /metrics; the cycle is found by its search attributes',
  { timeout: 420_000 },
  async () => {
    const workers = [spawnWorker('control', env, settings), spawnWorker('gpu', env, settings)];
    try {
      const urls = await waitFor(
        'both workers to list their /metrics endpoint',
        async () => {
          const t = await metricsTargets(settings.dataDir);
          return t.control && t.gpu ? t : undefined;
        },
        120_000,
      );
      const before = await scrape(urls.control);
      assert.equal(valueOf(before, 'minerflow_commits_total', ME), undefined, 'no commit counted before the cycle');
      assert.ok(valueOf(before, 'process_cpu_seconds_total') !== undefined, 'the process metrics are there too');

      const workflowId = `metrics-${Date.now()}`;
      const handle = await env.client.workflow.start(miningCycle, {
        taskQueue: TASK_QUEUES.control,
        workflowId,
        args: [
          {
            ...SMALL_CYCLE,
            corpus: { path: 'sample:brown:ar' },
            curate: { heldOutFraction: 0.1 },
            training: { ...SMALL_CYCLE.training, steps: 90, segmentSteps: 30 },
            commit: { minTrainSeconds: 4, reserveSeconds: 1 },
          },
        ],
      });
      const done = handle.result();
      let finished = false;
      void done.then(
        () => (finished = true),
        () => (finished = true),
      );

      // While it trains: distinct training-loss values at rising steps, labelled with the cycle's hotkey.
      const seen: { step: number; loss: number }[] = [];
      let gpuSamples: Sample[] = [];
      while (!finished) {
        gpuSamples = await scrape(urls.gpu);
        const step = valueOf(gpuSamples, 'minerflow_train_step', ME);
        const loss = valueOf(gpuSamples, 'minerflow_train_loss', ME);
        if (step !== undefined && loss !== undefined && step !== seen.at(-1)?.step) seen.push({ step, loss });
        if ((await handle.query(statusQuery)).phase === 'checkpoint') break;
        await new Promise((r) => setTimeout(r, 150));
      }
      assert.ok(seen.length >= 3, `training loss seen at ${seen.length} steps: ${JSON.stringify(seen)}`);
      assert.ok(new Set(seen.map((s) => s.loss)).size >= 3, `the loss series moves: ${JSON.stringify(seen)}`);
      assert.ok(seen[0].loss > seen.at(-1)!.loss, `and goes down: ${JSON.stringify(seen)}`);
      const train = gpuSamples.find((s) => s.name === 'minerflow_train_loss' && s.labels.hotkey === ME.hotkey)!;
      assert.equal(train.labels.queue, TASK_QUEUES.gpu);
      for (const name of ['minerflow_train_learning_rate', 'minerflow_train_tokens_per_second'])
        assert.ok((valueOf(gpuSamples, name, ME) ?? 0) > 0, `${name} is measured`);
      assert.ok(
        Number.isFinite(valueOf(gpuSamples, 'minerflow_segment_heldout_loss', ME)),
        'held-out loss per segment',
      );
      assert.ok(
        (valueOf(gpuSamples, 'minerflow_segments_total', ME) ?? 0) >= 1,
        "(valueOf(gpuSamples, 'minerflow_segments_total', ME) ?? 0) >= 1",
      );

      // Ask visibility while it runs: the cycle carries its subnet, hotkey, round and phase.
      const listed = JSON.parse(
        execFileSync(
          settings.temporal.bin,
          [
            'workflow',
            'list',
            '--address',
            env.address,
            '--query',
            `MinerflowHotkey = 'default/default' AND MinerflowSubnet = 'connito' AND ExecutionStatus = 'Running'`,
            '--output',
            'json',
          ],
          { encoding: 'utf8' },
        ),
      ) as { execution: { workflowId: string } }[];
      assert.deepEqual(
        listed.map((w) => w.execution.workflowId),
        [workflowId],
      );

      const result = await done;
      assert.equal(result.score.status, 'scored', JSON.stringify(result.score));
      const after = await scrape(urls.control);
      assert.equal(valueOf(after, 'minerflow_commits_total', { ...ME, phase: 'commit1' }), 1);
      assert.equal(valueOf(after, 'minerflow_commits_total', { ...ME, phase: 'commit2' }), 1);
      assert.equal(valueOf(after, 'minerflow_cycle_round', ME), result.score.round);
      const round = { ...ME, round: String(result.score.round) };
      assert.equal(valueOf(after, 'minerflow_incentive_share', round), result.score.incentiveShare);
      assert.equal(valueOf(after, 'minerflow_score', round), result.score.rawScore);
      assert.equal(valueOf(after, 'minerflow_score_reports_total', { ...ME, status: 'scored' }), 1);
      const phase = after.find((s) => s.name === 'minerflow_phase_blocks_remaining');
      assert.ok(phase && phase.value > 0 && PHASES.includes(`${phase.labels.phase}:`), JSON.stringify(phase));

      // The search attributes follow the phases to the end.
      const desc = await handle.describe();
      assert.equal(desc.typedSearchAttributes.get({ name: 'MinerflowPhase', type: 'KEYWORD' }), 'done');
      assert.equal(desc.typedSearchAttributes.get({ name: 'MinerflowRound', type: 'INT' }), result.score.round);
      await recordHistory(env, settings, workflowId, 'fleet-attributes');
    } finally {
      for (const w of workers) w.kill('SIGTERM');
    }
  },
);
