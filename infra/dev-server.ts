// The local Temporal dev server (official Temporal CLI, built by scripts/setup-temporal.sh): SQLite
// persistence in the data folder, Web UI on :8233. Reused if one is already listening.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { searchAttributeFlags } from '../common/search-attributes';
import { logger } from './log';
import type { Settings } from './settings';

const devServerLog = logger.child({ module: 'dev-server' });

export interface DevServer {
  started: boolean; // false when one was already running
  stop(): Promise<void>;
}

export async function reachable(address: string): Promise<boolean> {
  try {
    const c = await Connection.connect({ address, connectTimeout: 1000 });
    await c.close();
    return true;
  } catch {
    return false;
  }
}

export async function ensureDevServer(
  settings: Settings,
  log: (m: string) => void = (m) => devServerLog.info(m),
): Promise<DevServer> {
  const address = settings.temporal.address;
  if (await reachable(address)) {
    log(`minerflow: using the Temporal server already listening on ${address}`);
    return { started: false, stop: async () => undefined };
  }
  const [host, port] = address.split(':');
  if (!['localhost', '127.0.0.1'].includes(host))
    throw new Error(`Temporal at ${address} is not reachable (and is not local, so no dev server is started)`);
  const bin = settings.temporal.bin;
  if (!existsSync(bin))
    throw new Error(
      `Temporal CLI not found at ${bin}; run \`npm run setup\` (builds it from its Go module) or set MINERFLOW_TEMPORAL_BIN`,
    );
  mkdirSync(settings.dataDir, { recursive: true });
  const uiPort = new URL(settings.temporal.uiUrl).port || '8233';
  const logFile = path.join(settings.dataDir, 'temporal-server.log');
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    port,
    '--ui-port',
    uiPort,
    '--db-filename',
    path.join(settings.dataDir, 'temporal.db'),
    '--namespace',
    settings.temporal.namespace,
    '--log-level',
    'warn',
    // The fleet's search attributes, so cycles can set them and `temporal workflow list --query` filters by them.
    ...searchAttributeFlags(),
  ];
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', out, out] });
  let exited = false;
  child.on('exit', () => (exited = true));
  const deadline = Date.now() + 60_000;
  while (!(await reachable(address))) {
    if (exited) throw new Error(`the Temporal dev server exited at start; see ${logFile}`);
    if (Date.now() > deadline)
      throw new Error(`the Temporal dev server did not answer on ${address} within 60 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  log(
    `minerflow: Temporal dev server on ${address}, Web UI ${settings.temporal.uiUrl} (history in ${path.join(settings.dataDir, 'temporal.db')})`,
  );
  return {
    started: true,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
