// `minerflow status`: three real cycles on two hotkeys and one Gradients job, found through Temporal
// visibility by their search attributes and detailed by their status queries, on one screen. The
// cycles are paused after their first segment so the screen can be compared with each cycle's own
// status; the job's pool has no gpu worker, so it holds its slot with its first segment waiting.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import type { CycleStatus } from '../subnets/connito/types';
import { offlineJobData, rowsToFile } from '../finetune/offline-data';
import { startLocalHub } from '../infra/hub/local-hub';
import { jobWorkflowId } from '../subnets/gradients/job';
import { temporalJobStarter } from '../subnets/gradients/temporal-ports';
import { jobStatusQuery, miningCycle, pauseSignal, statusQuery } from '../workflows';
import { publishTinyBase, serveDataset } from './helpers/gradients';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { useTemporal, waitFor, withWorkers } from './helpers/temporal';

// 200 ms blocks and a long Train phase: the cycles are still training when the screen is read.
const PHASES =
  'Distribute:2,Train:900,MinerCommit1:20,MinerCommit2:20,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';
const settings = testSettings({
  MINERFLOW_LOCAL_PHASES: PHASES,
  MINERFLOW_LOCAL_REGISTER: 'default/default@102,default/second@102',
});
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
let dir: string;
let hub: { url: string; close(): Promise<void> };
let dataset: { url: string; close(): Promise<void> };
const BASE = 'minerflow-demo/status-base';

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-status-'));
  hub = await startLocalHub({ dir: path.join(dir, 'hub'), token: 'hf_status_test' });
  settings.hub = { endpoint: hub.url, token: 'hf_status_test' };
  await publishTinyBase(settings.hub, dir, BASE);
  dataset = await serveDataset(rowsToFile(offlineJobData('instruct', 40).rows, 'json'));
});
after(async () => {
  await dataset?.close();
  await hub?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

useTemporal(settings, (t) => {
  env = t.env;
  bundle = t.bundle;
});

const run = promisify(execFile);

/** The real CLI, as a person runs it, against the test's dev server. */
async function minerflow(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [path.join(__dirname, '..', 'bin', 'minerflow.js'), ...args], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      MINERFLOW_DATA_DIR: settings.dataDir,
      MINERFLOW_LOG_LEVEL: 'warn',
    },
  });
  return stdout;
}

/** The table rows of the status screen, by workflow id (columns split on runs of 2+ spaces). */
function rowsOf(screen: string): Map<string, string[]> {
  const lines = screen.split('\n');
  const header = lines.findIndex((l) => l.startsWith('WORKFLOW'));
  assert.ok(header > 0, `a table header in:\n${screen}`);
  const rows = new Map<string, string[]>();
  for (const l of lines.slice(header + 1)) {
    if (!l.trim() || l.startsWith(' ')) continue;
    const cols = l.split(/ {2,}/);
    rows.set(cols[0], cols);
  }
  return rows;
}

test(
  'minerflow status lists three running cycles on two hotkeys and a Gradients job with their phase, step, best held-out loss, slack and score; --hotkey narrows it',
  { timeout: 420_000 },
  async () => {
    const base = {
      ...SMALL_CYCLE,
      corpus: { path: 'sample:brown:ar' },
      curate: { heldOutFraction: 0.1 },
      commit: { minTrainSeconds: 4, reserveSeconds: 1 },
    };
    const cycles = [
      { id: `status-a1-${Date.now()}`, hotkey: 'default', steps: 60 },
      { id: `status-a2-${Date.now()}`, hotkey: 'default', steps: 90 },
      { id: `status-b1-${Date.now()}`, hotkey: 'second', steps: 120 },
    ];
    await withWorkers(env, bundle, settings, async () => {
      const handles = await Promise.all(
        cycles.map((c) =>
          env.client.workflow.start(miningCycle, {
            taskQueue: TASK_QUEUES.control,
            workflowId: c.id,
            args: [
              {
                ...base,
                miner: { netuid: 102, wallet: 'default', hotkey: c.hotkey },
                training: { ...SMALL_CYCLE.training, steps: c.steps, segmentSteps: 30 },
              },
            ],
          }),
        ),
      );
      const taskId = `status-job-${Date.now()}`;
      const instruct = offlineJobData('instruct', 1);
      await temporalJobStarter(env.client, {
        pools: [{ name: 'status', slots: 1, memoryBytes: 2 ** 30 }],
        hotkey: 'default/default',
        training: { steps: 40, segmentSteps: 10, batchSize: 4 },
        reserveSeconds: 20,
      }).start({
        request: {
          model: BASE,
          task_id: taskId,
          hours_to_complete: 2,
          expected_repo_name: `job-${taskId}`,
          dataset: dataset.url,
          dataset_type: instruct.datasetType,
          file_format: 'json',
        },
        taskType: instruct.taskType,
        offer: null,
        decision: {
          accepted: true,
          reason: 'fits',
          pool: 'status',
          method: 'full',
          estimatedSeconds: 60,
          estimatedFinish: null,
        },
        receivedAt: Date.now(),
      });
      const job = env.client.workflow.getHandle(jobWorkflowId(taskId));
      try {
        // The job prepared its data, fetched its base, got the pool's slot and waits for a gpu worker.
        const jobStatus = await waitFor(
          'the job training',
          async () => {
            const s = await job.query(jobStatusQuery);
            return s.phase === 'train' ? s : undefined;
          },
          240_000,
        );
        // Pause each once it trains: it holds after its running segment, so its state stays put.
        const statuses: CycleStatus[] = await Promise.all(
          handles.map(async (h) => {
            await waitFor(
              'training',
              async () => ((await h.query(statusQuery)).phase === 'train' ? true : undefined),
              240_000,
            );
            await h.signal(pauseSignal);
            return waitFor(
              'paused',
              async () => {
                const s = await h.query(statusQuery);
                return s.phase === 'paused' ? s : undefined;
              },
              240_000,
            );
          }),
        );
        const screen = await minerflow(['status']);
        assert.match(screen, /^minerflow status — 3 running cycles, 1 job at /, screen);
        const rows = rowsOf(screen);
        assert.equal(rows.size, 4, screen);
        const jobRow = rows.get(jobWorkflowId(taskId));
        assert.ok(jobRow, `the job is listed:\n${screen}`);
        const [, jSubnet, jHotkey, jTask, jPool, jPhase, jStep, jBest, jSlack, jScore] = jobRow;
        assert.deepEqual(
          [jSubnet, jHotkey, jTask, jPool, jPhase, jStep, jBest, jScore],
          ['gradients', 'default/default', taskId, 'status', 'train', '0', '-', '-'],
        );
        const slackMs = jobStatus.deadline - Date.now();
        assert.match(jSlack, /^1h\d+m$/, `about two hours to the job's deadline (${slackMs} ms): ${jSlack}`);
        cycles.forEach((c, i) => {
          const s = statuses[i];
          const row = rows.get(c.id);
          assert.ok(row, `${c.id} is listed:\n${screen}`);
          const [, subnet, hotkey, round, pool, phase, step, best, slack, score] = row;
          assert.equal(pool, '-');
          assert.equal(subnet, 'connito');
          assert.equal(hotkey, `default/${c.hotkey}`);
          assert.equal(round, String(s.round));
          assert.equal(phase, 'paused');
          assert.equal(step, `${s.stepsDone}/${c.steps}`);
          assert.equal(best, s.best ? s.best.heldOutLoss.toFixed(4) : '-');
          assert.match(slack, /^(\d+h\d+m|\d+m\d+s|\d+s)$/, `time left before the training deadline: ${slack}`);
          assert.equal(score, '-', 'no cycle on these hotkeys has finished: no last score');
        });
        assert.ok(
          statuses.every((s) => s.best),
          'each paused after a segment with a held-out loss',
        );

        const second = rowsOf(await minerflow(['status', '--hotkey', 'default/second']));
        assert.deepEqual([...second.keys()], [cycles[2].id]);
      } finally {
        await Promise.all([...handles, job].map((h) => h.terminate('status test done').catch(() => undefined)));
      }
    });
  },
);
