// Entry point of the minerflow-gpu worker: training, evaluation and checkpoint writing. Run it on
// the hosts with accelerators; it picks tfjs-node-gpu there and falls back (and says so) elsewhere.
import { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { createGpuActivities } from '../activities';
import { TASK_QUEUES } from '../common/queues';
import { openStore } from '../infra/runtime';
import { loadSettings, type Settings } from '../infra/settings';
import { runUntilStopped } from '../infra/shutdown';
import { connectWorker } from '../infra/temporal';
import { logger } from '../infra/log';
import { startMetricsServer } from '../infra/metrics';

export async function createGpuWorker(settings: Settings, connection: NativeConnection): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: settings.temporal.namespace,
    taskQueue: TASK_QUEUES.gpu,
    activities: createGpuActivities(settings, openStore(settings.store), logger.child({ worker: 'gpu' })),
    // Training is CPU-bound and single-threaded per process: one at a time keeps heartbeats timely.
    maxConcurrentActivityTaskExecutions: 1,
    // Send step/loss heartbeats every few seconds (not 80% of the timeout) so progress is live.
    maxHeartbeatThrottleInterval: '3s',
    defaultHeartbeatThrottleInterval: '3s',
  });
}

if (require.main === module) {
  void (async () => {
    const settings = loadSettings();
    const connection = await connectWorker(settings);
    const worker = await createGpuWorker(settings, connection);
    const metrics = await startMetricsServer({ ...settings.metrics, dataDir: settings.dataDir, worker: 'gpu' });
    if (metrics) logger.info({ url: metrics.url }, 'metrics for Prometheus');
    logger.info({ taskQueue: TASK_QUEUES.gpu, temporal: settings.temporal.address }, 'gpu worker polling');
    // Exits on SIGTERM/SIGINT within SHUTDOWN_GRACE_MS, chain sockets and connection closed.
    await runUntilStopped(worker, connection, { name: 'gpu' });
  })().catch((err) => {
    logger.error({ err }, 'gpu worker failed');
    process.exit(1);
  });
}
