// Temporal's time-skipping test server (the Java one that scripts/setup-test-server.sh puts in .tools)
// and workers with stubbed activities, for cycle tests that take seconds whatever the machine's speed.
// Timers and activity durations are simulated: while nothing runs, the server jumps its clock to the
// next timer; a stub activity "takes" simulated time with env.sleep (see stub-activities.ts).
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { ensureSearchAttributes } from '../../infra/temporal';
import { TASK_QUEUES } from '../../common/queues';

export const TEST_SERVER_BIN = path.join(__dirname, '..', '..', '.tools', 'bin', 'temporal-test-server');

let runtimeInstalled = false;
let bundled: Promise<WorkflowBundle> | undefined;

/** The workflows bundled once per process (webpack takes seconds; every test file's env shares it). */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundled ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: new DefaultLogger('WARN'),
  });
  return bundled;
}

/** Starts the time-skipping server (launched by the SDK as `<wrapper> <port>`) and bundles the workflows. */
export async function startTimeSkipping(): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundle }> {
  if (!existsSync(TEST_SERVER_BIN)) {
    throw new Error(
      `${TEST_SERVER_BIN} is missing: run \`bash scripts/setup-test-server.sh\` (needs java and mvn; fetches io.temporal:temporal-test-server from Maven Central)`,
    );
  }
  if (!runtimeInstalled) {
    Runtime.install({
      logger: new DefaultLogger((process.env.MINERFLOW_TEST_LOG_LEVEL as 'ERROR' | undefined) ?? 'ERROR'),
    }); // not WARN: the gpu worker warns that it polls no workflows
    runtimeInstalled = true;
  }
  const [env, bundle] = await Promise.all([
    TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEST_SERVER_BIN } },
    }),
    workflowBundle(),
  ]);
  // The cycle sets the fleet's search attributes; a server that does not know them refuses the upsert.
  await ensureSearchAttributes(env.nativeConnection.operatorService, env.namespace ?? 'default');
  return { env, bundle };
}

/** One time-skipping server for a test file: started before its tests, torn down after. */
export function useTimeSkipping(use: (t: { env: TestWorkflowEnvironment; bundle: WorkflowBundle }) => void): void {
  let env: TestWorkflowEnvironment | undefined;
  before(async () => {
    const t = await startTimeSkipping();
    env = t.env;
    use(t);
  });
  after(async () => {
    await env?.teardown();
  });
}

export interface StubActivitySet {
  control: object;
  gpu: object;
}

/**
 * A control worker (workflows + control activities) and a gpu worker, both with the given stubs,
 * while `fn` runs. Heartbeats are not throttled: a stub's simulated hour passes in milliseconds, and
 * a heartbeat held back by the worker's real-time throttle would arrive after the server (on
 * simulated time) had already timed the activity out.
 */
export async function withStubWorkers<T>(
  env: TestWorkflowEnvironment,
  bundle: WorkflowBundle,
  activities: StubActivitySet,
  fn: () => Promise<T>,
): Promise<T> {
  const common = {
    connection: env.nativeConnection,
    maxHeartbeatThrottleInterval: 1,
    defaultHeartbeatThrottleInterval: 1,
  } as const;
  const control = await Worker.create({
    ...common,
    taskQueue: TASK_QUEUES.control,
    workflowBundle: bundle,
    activities: activities.control,
  });
  const gpu = await Worker.create({ ...common, taskQueue: TASK_QUEUES.gpu, activities: activities.gpu });
  return control.runUntil(gpu.runUntil(fn));
}

/** Polls `probe` (in real time) until it returns a value, or fails after `ms`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Advances the server's clock in steps of `stepMs` (env.sleep) until `probe` returns a value, for a
 * test that waits for a workflow to reach a point without awaiting its result.
 *
 * Why not simply poll: while any activity task is in flight the server holds a time-skipping lock,
 * and a stub's env.sleep() releases only that one; the test's own lock (held except inside
 * handle.result() and env.sleep()) keeps the stubs' simulated minutes running in real time. Why not
 * unlock for the whole wait: as soon as the workflow idles with no timer of its own (paused on a
 * condition), the server jumps to the next task it knows of, which can be ten years away.
 */
export async function advanceUntil<T>(
  env: TestWorkflowEnvironment,
  what: string,
  probe: () => Promise<T | undefined>,
  stepMs = 5_000,
  realMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + realMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${realMs} ms (real) waiting for ${what}`);
    await env.sleep(stepMs);
  }
}

/**
 * Sends a workflow update that the validator may reject, and returns the handler's result or throws
 * an Error with the validator's message. For an accepted update `handle.executeUpdate()` works on the
 * Java test server 1.31; for a rejected one not always: the server sometimes answers
 * UpdateWorkflowExecution with the rejection and sometimes with no outcome and a stage before
 * ACCEPTED; then the SDK re-sends the request as it should, and the server, which has dropped the
 * rejected update, answers NOT_FOUND ("update <id> not found"), reported as WorkflowNotFoundError.
 * In that case the validator's message is lost and this says "rejected (stage …)".
 */
export async function sendUpdate<R>(
  env: TestWorkflowEnvironment,
  workflowId: string,
  name: string,
  arg: unknown,
): Promise<R> {
  const res = await env.client.workflowService.updateWorkflowExecution({
    namespace: env.client.options.namespace,
    workflowExecution: { workflowId },
    waitPolicy: {
      lifecycleStage:
        temporal.api.enums.v1.UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
    },
    request: {
      meta: { updateId: randomUUID(), identity: 'minerflow-test' },
      input: { name, args: { payloads: [defaultPayloadConverter.toPayload(arg)] } },
    },
  });
  const outcome = res.outcome;
  if (!outcome) throw new Error(`update ${name} rejected (stage ${res.stage}; the test server kept no reason)`);
  if (outcome.failure) throw new Error(outcome.failure.message ?? 'update failed');
  const payload = outcome.success?.payloads?.[0];
  if (!payload) throw new Error(`update ${name}: empty outcome`);
  return defaultPayloadConverter.fromPayload(payload) as R;
}
