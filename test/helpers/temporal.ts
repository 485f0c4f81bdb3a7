// A real Temporal dev server (the CLI built by scripts/setup-temporal.sh) and real workers for tests.
import { after, before } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundle } from '@temporalio/worker';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ControlActivities } from '../../activities';
import { TASK_QUEUES } from '../../common/queues';
import { FLEET_ATTRIBUTES } from '../../common/search-attributes';
import { miningCycle } from '../../workflows';
import { disconnectAllChains } from '../../infra/chain/subtensor';
import type { Devnet } from '../../infra/devnet/server';
import type { Settings } from '../../infra/settings';
import { startTestDevnet } from './devnet';
import { createControlWorker } from '../../workers/control';
import { createGpuWorker } from '../../workers/gpu';

let runtimeInstalled = false;

export async function startTemporal(
  settings: Settings,
): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundle }> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: settings.temporal.bin },
      searchAttributes: Object.values(FLEET_ATTRIBUTES), // as `minerflow dev` registers them
    },
  });
  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: new DefaultLogger('WARN'),
  });
  return { env, bundle };
}

/**
 * A dev server for one test file: started before its tests, torn down after; `use` receives it.
 * With the devnet chain (the default) a devnet starts alongside and `settings` point at it.
 */
export function useTemporal(
  settings: Settings,
  use: (t: { env: TestWorkflowEnvironment; bundle: WorkflowBundle; devnet?: Devnet }) => void,
): void {
  let env: TestWorkflowEnvironment | undefined;
  let devnet: Devnet | undefined;
  before(async () => {
    if (settings.chain.kind === 'devnet') devnet = await startTestDevnet(settings);
    const t = await startTemporal(settings);
    env = t.env;
    use({ ...t, devnet });
  });
  after(async () => {
    await env?.teardown();
    await disconnectAllChains(); // the workers' chain connections, which would keep the test process alive
    await devnet?.close();
  });
}

/** Runs a control and (unless `gpu: false`) a gpu worker against `env` while `fn` runs. */
export async function withWorkers<T>(
  env: TestWorkflowEnvironment,
  bundle: WorkflowBundle,
  settings: Settings,
  fn: () => Promise<T>,
  opts: { gpu?: boolean; control?: boolean; overrides?: Partial<ControlActivities> } = {},
): Promise<T> {
  if (opts.control === false) return (await createGpuWorker(settings, env.nativeConnection)).runUntil(fn);
  const control = await createControlWorker(settings, env.nativeConnection, bundle, opts.overrides);
  if (opts.gpu === false) return control.runUntil(fn);
  const gpu = await createGpuWorker(settings, env.nativeConnection);
  return control.runUntil(gpu.runUntil(fn));
}

/** Starts a miningCycle with workers running and returns its result. */
export function runCycle(
  env: TestWorkflowEnvironment,
  bundle: WorkflowBundle,
  settings: Settings,
  workflowId: string,
  input: unknown,
  opts: Parameters<typeof withWorkers>[4] = {},
) {
  return withWorkers(
    env,
    bundle,
    settings,
    async () =>
      (
        await env.client.workflow.start(miningCycle, { taskQueue: TASK_QUEUES.control, workflowId, args: [input] })
      ).result(),
    opts,
  );
}

/** A worker in its own process (so a test can SIGKILL it), pointed at `env` with `settings`' folders and chain. */
/** A worker process from its entry file (workers/<which>.ts), or with `via: 'cli'` as `minerflow worker <which>`. */
export function spawnWorker(
  which: 'control' | 'gpu',
  env: TestWorkflowEnvironment,
  settings: Settings,
  extraEnv: Record<string, string> = {},
  via: 'entry' | 'cli' = 'entry',
): ChildProcess {
  const local = settings.chain.local;
  const root = path.join(__dirname, '..', '..');
  const argv =
    via === 'cli'
      ? [path.join(root, 'bin', 'minerflow.js'), 'worker', which]
      : ['--import', 'tsx', path.join(root, 'workers', `${which}.ts`)];
  return spawn(process.execPath, argv, {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      MINERFLOW_DATA_DIR: settings.dataDir,
      MINERFLOW_DATA_ROOTS: settings.dataRoots.join(path.delimiter),
      MINERFLOW_STORE: settings.store,
      MINERFLOW_CHAIN: settings.chain.kind === 'subtensor' ? settings.chain.url : settings.chain.kind,
      MINERFLOW_DEVNET_URL: settings.chain.url,
      MINERFLOW_LOCAL_BLOCK_MS: String(local.blockMs),
      MINERFLOW_LOCAL_PHASES: local.phases.map((p) => `${p.name}:${p.blocks}`).join(','),
      MINERFLOW_VALIDATOR_CORPUS: settings.validatorCorpus,
      ...extraEnv,
    },
    stdio: [
      'ignore',
      process.env.MINERFLOW_TEST_LOG ? 'inherit' : 'ignore',
      process.env.MINERFLOW_TEST_LOG ? 'inherit' : 'ignore',
    ],
  });
}

/** Saves a workflow's history as a replay fixture when RECORD_FIXTURES is set. */
export async function recordHistory(
  env: TestWorkflowEnvironment,
  settings: Settings,
  workflowId: string,
  name: string,
): Promise<void> {
  if (!process.env.RECORD_FIXTURES) return;
  const json = execFileSync(
    settings.temporal.bin,
    ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json'],
    { encoding: 'utf8' },
  );
  // The workflow id goes along: replay needs it (child workflow ids are derived from it).
  const history = { workflowId, ...(JSON.parse(json) as object) };
  await fs.writeFile(path.join(__dirname, '..', 'fixtures', `${name}.history.json`), JSON.stringify(history) + '\n');
}

/** Polls `probe` until it returns a value, or fails after `ms`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
