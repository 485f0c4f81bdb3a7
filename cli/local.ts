// `minerflow demo|dev|devnet|worker`: running the pieces on this machine. Diagnostics go through
// the pino logger (stderr); stdout keeps what a person reads (the demo's story, the devnet's address).
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startLocalHub } from '../infra/hub/local-hub';
import type { Logger as SdkLogger, LogLevel as SdkLevel, LogMetadata } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import { ensureDevServer } from '../infra/dev-server';
import { disconnectAllChains } from '../infra/chain/subtensor';
import { logger, type Logger } from '../infra/log';
import { startMetricsServer } from '../infra/metrics';
import { startLocalDevnet } from '../infra/runtime';
import type { Settings } from '../infra/settings';
import { connectClient, connectWorker } from '../infra/temporal';
import { CycleInputSchema } from '../subnets/connito/config';
import { createControlWorker } from '../workers/control';
import { checkPool, createGpuWorker, gpuQueue } from '../workers/gpu';
import { serveWorker } from '../workers/serve';
import { intFlag, parseCommand, UsageError } from './args';
import { startCycle } from './cycle';
import { printResult, printStarted, watchCycle, writeLossPlot } from './watch';

const log = logger.child({ module: 'cli' });

/** The Temporal SDK's logger (worker state, activity and workflow logs) writing through pino. */
export function sdkLogger(target: Logger): SdkLogger {
  const levels: Record<SdkLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  const at = (level: SdkLevel) => (message: string, meta?: LogMetadata) => target[levels[level]]({ ...meta }, message);
  return {
    log: (level, message, meta) => at(level)(message, meta),
    trace: at('TRACE'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  };
}

/** Routes the SDK's logs through pino; once per process, before any worker or connection. */
function installSdkLogger(): void {
  Runtime.install({ logger: sdkLogger(logger.child({ module: 'temporal' })) });
}

/**
 * The demo's cycle: the embedded defaults, with mixture-of-experts feed-forwards (Connito trains
 * expert groups) and the expert shard published to a Hugging Face repo (the local hub's).
 */
export const DEMO_INPUT = {
  model: { moe: { experts: 4, topK: 2 } },
  publish: { repo: 'demo-miner/sn102', expertGroup: 0, expertGroups: 2 },
};

/** Dev server (if none is running), both workers in this process, two cycles, the results, then stop. */
export async function demo(getSettings: () => Settings, args: string[]): Promise<void> {
  parseCommand('demo', args, {});
  // The progress bar tells the story; worker and SDK logs show from warnings up (MINERFLOW_LOG_LEVEL overrides).
  if (!process.env.MINERFLOW_LOG_LEVEL) logger.level = log.level = 'warn';
  installSdkLogger();
  const { settings, stopDevnet } = await withDevnet(getSettings(), 0);
  const server = await ensureDevServer(settings, (m) => log.info(m));
  const connection = await connectWorker(settings);
  const workers = [await createControlWorker(settings, connection), await createGpuWorker(settings, connection)];
  const running = workers.map((w) => w.run());
  try {
    const client = await connectClient(settings);
    // Two rounds as an SN102 miner: the first trains from scratch and publishes its expert shard to the
    // (local) hub; the devnet's validator makes the best shard the next global model, and the second
    // round starts from it (Distribute). Each cycle has its own id, so the demo also runs beside a
    // cycle left on the dev server.
    for (const n of [1, 2]) {
      console.log(`\nminerflow demo: round ${n} of 2`);
      const handle = await startCycle(
        client,
        DEMO_INPUT,
        CycleInputSchema.parse(DEMO_INPUT),
        `cycle-${new Date().toISOString().replace(/[:.]/g, '-')}`,
      );
      printStarted(settings, handle);
      const result = await watchCycle(handle);
      printResult(settings, result);
      const svg = await writeLossPlot(settings, handle.workflowId, result.segments);
      if (svg) console.log(`  loss curves     ${svg}`);
    }
    if (server.started) {
      console.log(`\n$ temporal workflow list   (against the dev server, before it stops)`);
      spawnSync(
        settings.temporal.bin,
        [
          'workflow',
          'list',
          '--address',
          settings.temporal.address,
          '--namespace',
          settings.temporal.namespace,
          '--limit',
          '5',
        ],
        { stdio: 'inherit' },
      );
      console.log(
        `\nThe dev server stops with the demo; its history stays in ${path.join(settings.dataDir, 'temporal.db')}.`,
      );
      console.log(`Run \`npx minerflow dev\` to bring it back with the Web UI at ${settings.temporal.uiUrl}.`);
    }
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
    await connection.close();
    await server.stop();
    await stopDevnet();
  }
}

export async function dev(getSettings: () => Settings, args: string[]): Promise<void> {
  parseCommand('dev', args, {});
  installSdkLogger();
  const base = getSettings();
  // The configured devnet port when it is free, so workers started elsewhere on this host find it.
  const { settings, stopDevnet } = await withDevnet(base, Number(new URL(base.chain.url).port) || 9944).catch(() =>
    withDevnet(base, 0),
  );
  const server = await ensureDevServer(settings, (m) => log.info(m));
  const connection = await connectWorker(settings);
  const workers = [await createControlWorker(settings, connection), await createGpuWorker(settings, connection)];
  const metrics = await startMetricsServer({ ...settings.metrics, dataDir: settings.dataDir, worker: 'dev' });
  if (metrics) console.log(`minerflow: metrics of both workers at ${metrics.url}`);
  console.log(
    `minerflow: workers on '${TASK_QUEUES.control}' and '${TASK_QUEUES.gpu}'. Start a cycle from the Web UI (workflow type miningCycle, task queue ${TASK_QUEUES.control}, input {}) or with \`npx minerflow cycle start\`. Ctrl-C stops.`,
  );
  const stop = () => workers.forEach((w) => w.shutdown());
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await Promise.allSettled(workers.map((w) => w.run()));
  await metrics?.close();
  await connection.close();
  await server.stop();
  await stopDevnet();
}

/** With the devnet chain (the default), starts one in this process on loopback and points the settings at it. */
async function withDevnet(
  settings: Settings,
  port: number,
): Promise<{ settings: Settings; stopDevnet: () => Promise<void> }> {
  if (settings.chain.kind !== 'devnet') return { settings, stopDevnet: () => disconnectAllChains() };
  // With no Hugging Face token of the operator's, a local hub stands in for huggingface.co (as the
  // devnet for finney): the miners' shards and the validator's global models go there.
  const token = `hf_${randomBytes(16).toString('hex')}`;
  const hub =
    settings.hub.token === undefined
      ? await startLocalHub({ dir: path.join(settings.dataDir, 'hub'), token })
      : undefined;
  if (hub) settings = { ...settings, hub: { endpoint: hub.url, token } };
  const devnetLog = logger.child({ module: 'devnet' });
  const devnet = await startLocalDevnet(settings, { port, log: (m) => devnetLog.info(m) });
  log.info(
    { url: devnet.url },
    `devnet (subtensor JSON-RPC, finney metadata) at ${devnet.url}; other workers reach it with MINERFLOW_DEVNET_URL=${devnet.url}`,
  );
  return {
    settings: { ...settings, chain: { ...settings.chain, url: devnet.url } },
    stopDevnet: async () => {
      await disconnectAllChains();
      await devnet.close();
      await hub?.close();
    },
  };
}

/** `minerflow devnet`: the devnet alone, in the foreground, until Ctrl-C. */
export async function devnetCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('devnet', args, { port: { type: 'string' } });
  const flagPort = intFlag('port', values.port, 0, 65_535);
  const settings = getSettings();
  const port = flagPort ?? (Number(new URL(settings.chain.url).port) || 9944);
  const devnetLog = logger.child({ module: 'devnet' });
  const devnet = await startLocalDevnet(settings, { port, log: (m) => devnetLog.info(m) });
  const { blockMs, phases, register } = settings.chain.local;
  console.log(`minerflow devnet: ${devnet.url}`);
  console.log(`  ${blockMs} ms blocks; phases ${phases.map((p) => `${p.name}:${p.blocks}`).join(',')}`);
  console.log(
    `  registered: ${register.map((r) => `${r.wallet}/${r.hotkey}@${r.netuid}`).join(', ') || 'none'} (wallets in ${settings.walletsDir})`,
  );
  console.log(
    `  workers: MINERFLOW_CHAIN=devnet MINERFLOW_DEVNET_URL=${devnet.url}. Ctrl-C stops (the devnet keeps no state).`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await devnet.close();
}

export async function worker(getSettings: () => Settings, args: string[]): Promise<void> {
  const { positionals, values } = parseCommand(
    'worker',
    args,
    { pool: { type: 'string' } },
    { min: 1, max: 1, names: "'control' or 'gpu'" },
  );
  const which = positionals[0];
  if (which !== 'control' && which !== 'gpu') throw new UsageError(`'worker' takes 'control' or 'gpu', not '${which}'`);
  let pool: string | undefined;
  try {
    pool = checkPool(typeof values.pool === 'string' ? values.pool : process.env.MINERFLOW_GPU_POOL);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (pool && which !== 'gpu') throw new UsageError('--pool is for a gpu worker (a Gradients pool)');
  const settings = getSettings();
  installSdkLogger();
  // The same process life as workers/*.ts: exits on SIGTERM/SIGINT with its chain sockets closed.
  await serveWorker(settings, which, which === 'gpu' ? gpuQueue(pool) : TASK_QUEUES.control, (c) =>
    which === 'control' ? createControlWorker(settings, c) : createGpuWorker(settings, c, { pool }),
  );
}
