// End to end on the real Temporal dev server: with training.lrFind on, the cycle runs the LR range
// test once before the first segment and trains with its (clamped) suggestion.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import type { StepReport } from '../model/trainer';
import { openStore } from '../infra/runtime';
import { miningCycle, statusQuery } from '../workflows';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { recordHistory, useTemporal, withWorkers } from './helpers/temporal';

const settings = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;

useTemporal(settings, (t) => ({ env, bundle } = t));

test(
  'a cycle with training.lrFind trains at the LR range test’s clamped suggestion',
  { timeout: 240_000 },
  async () => {
    const lrFind = { enabled: true, steps: 40, floor: 1e-3, ceiling: 3e-2 };
    // A configured LR far outside [floor, ceiling]: if training used it, the metrics would show it.
    const input = {
      ...SMALL_CYCLE,
      corpus: { path: 'sample:brown:ar' },
      curate: { heldOutFraction: 0.1 },
      training: { ...SMALL_CYCLE.training, learningRate: 0.5, lrFind },
      // The range test runs inside the training window: room for it and a segment on a busy host.
      commit: { ...SMALL_CYCLE.commit, minTrainSeconds: 30 },
    };
    const workflowId = `e2e-lr-find-${Date.now()}`;
    const { result, status, events } = await withWorkers(env, bundle, settings, async () => {
      const handle = await env.client.workflow.start(miningCycle, {
        taskQueue: TASK_QUEUES.control,
        workflowId,
        args: [input],
      });
      const result = await handle.result();
      const history = await handle.fetchHistory();
      const events = (history.events ?? []).flatMap((e) =>
        e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name ?? ''] : [],
      );
      return { result, status: await handle.query(statusQuery), events };
    });

    const found = result.training.lrFind;
    assert.ok(found, 'the result carries the LR range test');
    assert.ok(
      Number.isFinite(found.suggestedLr) && found.chosenLr >= lrFind.floor && found.chosenLr <= lrFind.ceiling,
      JSON.stringify(found),
    );
    assert.equal(result.training.learningRate, found.chosenLr);
    assert.equal(status.learningRate, found.chosenLr);
    assert.equal(status.lrFind?.curve, found.curve.length);
    assert.ok(found.curve.length > 1, 'found.curve.length > 1');
    // Once, before the first segment.
    assert.deepEqual(events.filter((n) => n === 'lrFind' || n === 'trainSegment').slice(0, 2), [
      'lrFind',
      'trainSegment',
    ]);
    assert.equal(events.filter((n) => n === 'lrFind').length, 1);
    // Training ran at the chosen peak: the largest scheduled LR of segment 1 is exactly it (warmup ends inside it).
    const store = openStore(settings.store);
    const steps = (await fs.readFile(await store.get(result.segments[0].metricsKey), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as StepReport);
    const peak = Math.max(...steps.map((s) => s.lr));
    assert.ok(Math.abs(peak - found.chosenLr) < 1e-9 * found.chosenLr, `peak LR ${peak} vs chosen ${found.chosenLr}`);
    assert.ok(result.checkpoint.heldOutLoss < result.checkpoint.baselineLoss - 0.5, JSON.stringify(result.checkpoint));

    await recordHistory(env, settings, workflowId, 'lr-find');
  },
);
