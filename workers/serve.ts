// The life of a worker process, shared by the entry files (workers/control.ts, workers/gpu.ts) and
// `minerflow worker …`: connect, create the worker, expose metrics, poll until SIGTERM/SIGINT, then
// close the chain sockets and the connection and exit within SHUTDOWN_GRACE_MS.
import type { NativeConnection, Worker } from '@temporalio/worker';
import { logger } from '../infra/log';
import { startMetricsServer } from '../infra/metrics';
import type { Settings } from '../infra/settings';
import { runUntilStopped } from '../infra/shutdown';
import { connectWorker } from '../infra/temporal';

export async function serveWorker(
  settings: Settings,
  name: 'control' | 'gpu',
  taskQueue: string,
  create: (connection: NativeConnection) => Promise<Worker>,
): Promise<void> {
  const connection = await connectWorker(settings);
  const worker = await create(connection);
  const metrics = await startMetricsServer({ ...settings.metrics, dataDir: settings.dataDir, worker: name });
  if (metrics) logger.info({ url: metrics.url }, 'metrics for Prometheus');
  logger.info({ worker: name, taskQueue, temporal: settings.temporal.address }, `${name} worker polling`);
  await runUntilStopped(worker, connection, { name }); // never returns: the process exits
}

/** Runs `main` as a process entry point: a failure before polling starts is logged and exits 1. */
export function runEntry(name: string, main: () => Promise<void>): void {
  main().catch((err) => {
    logger.error({ err }, `${name} worker failed`);
    process.exit(1);
  });
}
