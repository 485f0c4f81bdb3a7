// Entry point of the minerflow-gpu worker: training, evaluation and checkpoint writing. Run it on
// the hosts with accelerators; it picks tfjs-node-gpu there and falls back (and says so) elsewhere.
// With a pool (`--pool <name>` or MINERFLOW_GPU_POOL) it serves that Gradients pool's queue,
// minerflow-gpu-<pool>, instead of the shared minerflow-gpu.
import { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { createGpuActivities } from '../activities';
import { poolQueue, TASK_QUEUES } from '../common/queues';
import { openStore } from '../infra/runtime';
import { loadSettings, type Settings } from '../infra/settings';
import { logger } from '../infra/log';
import { runEntry, serveWorker } from './serve';

/** A pool name from a flag or MINERFLOW_GPU_POOL (empty: none), checked as the pool config checks it. */
export function checkPool(pool: string | undefined): string | undefined {
  if (!pool) return undefined;
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(pool))
    throw new Error(`--pool / MINERFLOW_GPU_POOL '${pool}': lowercase letters, digits and - (1–32 characters)`);
  return pool;
}

/** The queue a gpu worker polls: its pool's, or the shared one. */
export function gpuQueue(pool?: string): string {
  return pool ? poolQueue(pool) : TASK_QUEUES.gpu;
}

export async function createGpuWorker(
  settings: Settings,
  connection: NativeConnection,
  opts: { pool?: string } = {},
): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: settings.temporal.namespace,
    taskQueue: gpuQueue(opts.pool),
    activities: createGpuActivities(settings, openStore(settings.store), logger.child({ worker: 'gpu' })),
    // Training is CPU-bound and single-threaded per process: one at a time keeps heartbeats timely.
    maxConcurrentActivityTaskExecutions: 1,
    // Send step/loss heartbeats every few seconds (not 80% of the timeout) so progress is live.
    maxHeartbeatThrottleInterval: '3s',
    defaultHeartbeatThrottleInterval: '3s',
  });
}

if (require.main === module) {
  runEntry('gpu', () => {
    const settings = loadSettings();
    const at = process.argv.indexOf('--pool');
    const pool = checkPool((at >= 0 ? process.argv[at + 1] : undefined) ?? process.env.MINERFLOW_GPU_POOL);
    return serveWorker(settings, 'gpu', gpuQueue(pool), (c) => createGpuWorker(settings, c, { pool }));
  });
}
