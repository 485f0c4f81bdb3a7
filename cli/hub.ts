// `minerflow hub serve`: the local Hugging Face Hub (infra/hub/local-hub.ts) on its own, for the demo
// and for trying huggingface_hub against it (HF_ENDPOINT=<its URL>).
import * as path from 'node:path';
import { startLocalHub } from '../infra/hub/local-hub';
import type { Settings } from '../infra/settings';
import { intFlag, parseCommand, UsageError } from './args';

export const DEFAULT_LOCAL_HUB_PORT = 8090;

export async function hubCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("'hub' needs a command: serve");
  if (sub !== 'serve') throw new UsageError(`unknown 'hub' command '${sub}' (there is: serve)`);
  const { values } = parseCommand('hub serve', rest, {
    dir: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
  });
  const port = intFlag('port', values.port, 0, 65_535) ?? DEFAULT_LOCAL_HUB_PORT;
  const dir = path.resolve(typeof values.dir === 'string' ? values.dir : path.join(getSettings().dataDir, 'hub'));
  // The write token comes from the environment, never a flag (flags show in `ps`); unset: any Bearer token writes.
  const token = process.env.MINERFLOW_LOCAL_HUB_TOKEN || undefined;
  const hub = await startLocalHub({
    dir,
    port,
    host: typeof values.host === 'string' ? values.host : undefined,
    token,
  });
  console.log(`minerflow hub: ${hub.url}`);
  console.log(
    `  repos in ${dir}; writes need ${token ? 'the token in MINERFLOW_LOCAL_HUB_TOKEN' : 'any Bearer token'}`,
  );
  console.log(`  clients: HF_ENDPOINT=${hub.url}. Ctrl-C stops.`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await hub.close();
}
