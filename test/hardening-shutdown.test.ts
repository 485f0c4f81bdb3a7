// Clean shutdown: a worker process told to stop (SIGTERM, as systemd, Kubernetes and `minerflow dev`
// do) must exit, with code 0, even when it holds a chain WebSocket that would otherwise keep
// reconnecting for ever. Real processes against a real Temporal dev server and devnet.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import { miningCycle } from '../workflows';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { spawnWorker, useTemporal, waitFor, withWorkers } from './helpers/temporal';

const settings = testSettings();
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
useTemporal(settings, (t) => ({ env, bundle } = t));

// A correctness bound, not a speed measurement: the worker's own hard stop is at 10 s.
const EXIT_BOUND_MS = 20_000;

/** Pollers of `queue`'s workflow tasks (the control worker) or activity tasks (a gpu worker polls only those). */
async function pollersOf(queue: string, tasks: 'workflow' | 'activity' = 'workflow'): Promise<number> {
  const r = await env.client.workflowService.describeTaskQueue({
    namespace: settings.temporal.namespace,
    taskQueue: { name: queue },
    taskQueueType: tasks === 'workflow' ? 1 : 2,
  });
  return r.pollers?.length ?? 0;
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

async function expectExitOnSigterm(child: ChildProcess): Promise<void> {
  const exited = exitOf(child);
  child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), EXIT_BOUND_MS).unref());
  const result = await Promise.race([exited, timeout]);
  if (result === 'timeout') child.kill('SIGKILL');
  assert.notEqual(result, 'timeout', `the worker was still alive ${EXIT_BOUND_MS / 1000} s after SIGTERM`);
  assert.deepEqual(result, { code: 0, signal: null }, 'a clean exit');
}

test('an idle control worker exits with code 0 after SIGTERM', { timeout: 120_000 }, async () => {
  const control = spawnWorker('control', env, settings);
  try {
    await waitFor(
      'the control worker to poll',
      async () => ((await pollersOf(TASK_QUEUES.control)) > 0 ? true : undefined),
      60_000,
    );
    await expectExitOnSigterm(control);
  } finally {
    control.kill('SIGKILL');
  }
});

test('an idle `minerflow worker gpu` exits with code 0 after SIGTERM', { timeout: 120_000 }, async () => {
  const gpu = spawnWorker('gpu', env, settings, {}, 'cli');
  try {
    await waitFor(
      'the gpu worker to poll',
      async () => ((await pollersOf(TASK_QUEUES.gpu, 'activity')) > 0 ? true : undefined),
      60_000,
    );
    await expectExitOnSigterm(gpu);
  } finally {
    gpu.kill('SIGKILL');
  }
});

test(
  '`minerflow worker control` that has used the chain (open WebSocket) exits with code 0 after SIGTERM',
  { timeout: 300_000 },
  async () => {
    // Through the CLI, the command operators run (and the one that once lived on after STOPPED);
    // workers/control.ts shares its process life (workers/serve.ts) and is covered above.
    const control = spawnWorker('control', env, settings, {}, 'cli');
    try {
      // A whole cycle: curate, train (an in-process gpu worker), commit and score on the devnet, so the
      // control worker's chain connection is open when the signal comes.
      const input = { ...SMALL_CYCLE, corpus: { path: 'sample:brown:r' }, curate: { heldOutFraction: 0.1 } };
      const result = await withWorkers(
        env,
        bundle,
        settings,
        async () => {
          const handle = await env.client.workflow.start(miningCycle, {
            taskQueue: TASK_QUEUES.control,
            workflowId: `shutdown-${Date.now()}`,
            args: [input],
          });
          return handle.result();
        },
        { control: false },
      );
      assert.ok(result.segments.length > 0, 'result.segments.length > 0');
      await expectExitOnSigterm(control);
    } finally {
      control.kill('SIGKILL');
    }
  },
);
