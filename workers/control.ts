// Entry point of the minerflow-control worker: the workflows and the CPU activities (curate, and
// each subnet's chain and scoring stages). Run one or more anywhere that reaches Temporal, the store and the chain.
import { Worker, type WorkflowBundle } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { createControlActivities, type ControlActivities } from '../activities';
import { TASK_QUEUES } from '../common/queues';
import type { Chain } from '../infra/chain/chain';
import { openChain, openStore } from '../infra/runtime';
import { loadSettings, type Settings } from '../infra/settings';
import { ensureSearchAttributes } from '../infra/temporal';
import { logger } from '../infra/log';
import { observeChain } from '../infra/metrics';
import { runEntry, serveWorker } from './serve';

/** `overrides` swaps single activities (tests use it to make a commit deliberately slow). */
export async function createControlWorker(
  settings: Settings,
  connection: NativeConnection,
  workflowBundle?: WorkflowBundle,
  overrides: Partial<ControlActivities> = {},
): Promise<Worker> {
  await ensureSearchAttributes(connection.operatorService, settings.temporal.namespace);
  let chain: Promise<Chain> | undefined;
  // Each scrape shows the chain's phase, once this worker has a chain connection (a scrape opens none).
  observeChain('connito', () => chain);
  const activities = {
    ...createControlActivities(
      settings,
      openStore(settings.store),
      () => (chain ??= openChain(settings)),
      logger.child({ worker: 'control' }),
    ),
    ...overrides,
  };
  return Worker.create({
    connection,
    namespace: settings.temporal.namespace,
    taskQueue: TASK_QUEUES.control,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities,
    // After this worker dies, its cycles' next workflow task waits this long on its sticky queue
    // before any other worker may take it (SDK default 10 s: a commit window can be shorter).
    stickyQueueScheduleToStartTimeout: '2s',
  });
}

if (require.main === module) {
  runEntry('control', () => {
    const settings = loadSettings();
    return serveWorker(settings, 'control', TASK_QUEUES.control, (c) => createControlWorker(settings, c));
  });
}
