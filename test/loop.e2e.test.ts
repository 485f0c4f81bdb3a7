// The long-running miner (minerLoop) and cron schedules, on the real Temporal dev server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import { createCycleSchedule } from '../infra/schedules';
import { minerLoop, miningCycle } from '../workflows';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { recordHistory, withWorkers, useTemporal } from './helpers/temporal';

const settings = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;

useTemporal(settings, (t) => ({ env, bundle } = t));

test(
  'minerLoop runs cycles back to back, warm-starts each from the best so far, and carries state through continue-as-new',
  { timeout: 240_000 },
  async () => {
    const cycle = { ...SMALL_CYCLE, corpus: { path: 'sample:brown:ar' }, curate: { heldOutFraction: 0.1 } };
    const workflowId = `loop-${Date.now()}`;
    const { carry, firstRunId, lastRunId, second } = await withWorkers(env, bundle, settings, async () => {
      const handle = await env.client.workflow.start(minerLoop, {
        taskQueue: TASK_QUEUES.control,
        workflowId,
        args: [{ cycle, cycles: 2, cyclesPerRun: 1 }],
      });
      const firstRunId = handle.firstExecutionRunId;
      const carry = await handle.result(); // follows the continue-as-new chain
      const lastRunId = (await env.client.workflow.getHandle(workflowId).describe()).runId;
      // The loop's cycles run under the hotkey's cycle id (one cycle per hotkey): the latest run is cycle 2.
      const second = await env.client.workflow.getHandle<typeof miningCycle>(carry.scores[1]!.workflowId).result();
      return { carry, firstRunId, lastRunId, second };
    });
    assert.equal(carry.completed, 2);
    assert.deepEqual(
      carry.scores.map((s) => [s.status, s.workflowId]),
      [
        ['scored', 'miningCycle-102-default.default'],
        ['scored', 'miningCycle-102-default.default'],
      ],
    );
    assert.notEqual(lastRunId, firstRunId, 'the loop continued as new between cycles');
    assert.ok(carry.best, 'carry.best');
    // Cycle 2 started from cycle 1's best weights: its first segment is already far below an untrained model.
    assert.ok(second.segments[0].heldOutLoss < second.checkpoint.baselineLoss - 1, JSON.stringify(second.segments[0]));
    await recordHistory(env, settings, workflowId, 'miner-loop');
  },
);

test(
  'a cron schedule starts mining cycles with overlap policy skip, and can be paused and deleted',
  { timeout: 240_000 },
  async () => {
    const scheduleId = `sched-${Date.now()}`;
    const handle = await createCycleSchedule(env.client, {
      scheduleId,
      cron: '*/30 * * * *',
      input: { training: { steps: 10 } },
    });
    const d = await handle.describe();
    assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(d.action.type, 'startWorkflow');
    assert.equal(d.action.type === 'startWorkflow' && d.action.workflowType, 'miningCycle');
    assert.ok(d.info.nextActionTimes.length > 0, 'd.info.nextActionTimes.length > 0');
    await handle.pause('test');
    assert.equal((await handle.describe()).state.paused, true);
    const ids: string[] = [];
    for await (const s of env.client.schedule.list()) ids.push(s.scheduleId);
    assert.ok(ids.includes(scheduleId), 'ids.includes(scheduleId)');
    await handle.delete();
    await assert.rejects(handle.describe());
  },
);
