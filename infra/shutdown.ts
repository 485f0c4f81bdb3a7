// Process lifetime of a worker entry point: run until SIGTERM/SIGINT, then stop polling, let the
// current tasks finish their report, close what keeps Node alive (chain WebSockets, the Temporal
// connection) and exit; if that takes longer than a grace period, exit anyway. Without this the
// control worker logged STOPPED and then lived on, reconnecting its chain WebSocket forever.
import type { NativeConnection, Worker } from '@temporalio/worker';
import { disconnectAllChains } from './chain/subtensor';
import { logger } from './log';

/** How long a signalled worker may take to stop cleanly before it is made to exit. */
export const SHUTDOWN_GRACE_MS = 10_000;

export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * Runs `worker` until it stops (a shutdown signal, or a fatal error), then releases the process:
 * disconnects every chain, closes `connection` and exits (0 after a clean stop, 1 after an error or
 * when the grace period ran out). Never returns.
 */
export async function runUntilStopped(
  worker: Worker,
  connection: NativeConnection,
  opts: { name: string; graceMs?: number; log?: (msg: string) => void; exit?: (code: number) => void } = {
    name: 'worker',
  },
): Promise<void> {
  const log = opts.log ?? ((m: string) => logger.info(m));
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const graceMs = opts.graceMs ?? SHUTDOWN_GRACE_MS;
  let forced: NodeJS.Timeout | undefined;
  const onSignal = (signal: string) => {
    if (forced) return;
    log(`minerflow: ${opts.name} worker got ${signal}; stopping (at most ${graceMs / 1000} s)`);
    // The hard stop: a stuck task or socket must not keep a stopped worker alive for ever.
    forced = setTimeout(() => {
      log(`minerflow: ${opts.name} worker did not stop within ${graceMs / 1000} s; exiting anyway`);
      exit(1);
    }, graceMs);
    forced.unref();
    try {
      worker.shutdown(); // the SDK's own signal handler may have asked already: then this throws, harmlessly
    } catch {
      /* already stopping */
    }
  };
  for (const s of SHUTDOWN_SIGNALS) process.on(s, onSignal);
  let code = 0;
  try {
    await worker.run();
  } catch (err) {
    logger.error({ err }, `${opts.name} worker failed`);
    code = 1;
  }
  await releaseProcess(connection);
  log(`minerflow: ${opts.name} worker stopped`);
  exit(code);
}

/** Closes what keeps Node's event loop alive once the worker has stopped. */
export async function releaseProcess(connection: NativeConnection): Promise<void> {
  await disconnectAllChains().catch(() => undefined);
  await connection.close().catch(() => undefined);
}
