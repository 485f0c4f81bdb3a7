// Temporal's time-skipping test server (the Java one that scripts/setup-test-server.sh puts in .tools)
// and workers with stubbed activities, for cycle tests that take seconds whatever the machine's speed.
// Timers and activity durations are simulated: while nothing runs, the server jumps its clock to the
// next timer; a stub activity "takes" simulated time with env.sleep (see stub-activities.ts).
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../../common/queues';

export const TEST_SERVER_BIN = path.join(__dirname, '..', '..', '.tools', 'bin', 'temporal-test-server');

let runtimeInstalled = false;
let bundled: Promise<WorkflowBundle> | undefined;

/** The workflows bundled once per process (webpack takes seconds; every test file's env shares it). */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundled ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: new DefaultLogger('WARN') });
  return bundled;
}

/** Starts the time-skipping server (launched by the SDK as `<wrapper> <port>`) and bundles the workflows. */
export async function startTimeSkipping(): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundle }> {
  if (!existsSync(TEST_SERVER_BIN)) {
    throw new Error(`${TEST_SERVER_BIN} is missing: run \`bash scripts/setup-test-server.sh\` (needs java and mvn; fetches io.temporal:temporal-test-server from Maven Central)`);
  }
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('ERROR') }); // not WARN: the gpu worker warns that it polls no workflows
    runtimeInstalled = true;
  }
  const [env, bundle] = await Promise.all([
    TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER_BIN } } }),
    workflowBundle(),
  ]);
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
export async function withStubWorkers<T>(env: TestWorkflowEnvironment, bundle: WorkflowBundle, activities: StubActivitySet, fn: () => Promise<T>): Promise<T> {
  const common = { connection: env.nativeConnection, maxHeartbeatThrottleInterval: 1, defaultHeartbeatThrottleInterval: 1 } as const;
  const control = await Worker.create({ ...common, taskQueue: TASK_QUEUES.control, workflowBundle: bundle, activities: activities.control });
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
