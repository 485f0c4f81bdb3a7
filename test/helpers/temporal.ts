// A real Temporal dev server (the CLI built by scripts/setup-temporal.sh) and real workers for tests.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundle } from '@temporalio/worker';
import type { Settings } from '../../infra/settings';
import { createControlWorker } from '../../workers/control';
import { createGpuWorker } from '../../workers/gpu';

let runtimeInstalled = false;

export async function startTemporal(settings: Settings): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundle }> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: settings.temporal.bin } },
  });
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: new DefaultLogger('WARN') });
  return { env, bundle };
}

/** Runs a control and a gpu worker against `env` while `fn` runs. */
export async function withWorkers<T>(env: TestWorkflowEnvironment, bundle: WorkflowBundle, settings: Settings, fn: () => Promise<T>): Promise<T> {
  const control = await createControlWorker(settings, env.nativeConnection, bundle);
  const gpu = await createGpuWorker(settings, env.nativeConnection);
  return control.runUntil(gpu.runUntil(fn));
}
