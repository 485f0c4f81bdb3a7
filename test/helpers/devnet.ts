// A devnet for tests: started on a free loopback port with the test settings' clock, phases,
// registrations and validator; the settings then point at it (settings.chain.url).
import { after, before } from 'node:test';
import type { Devnet } from '../../infra/devnet/server';
import { startLocalDevnet } from '../../infra/runtime';
import type { Settings } from '../../infra/settings';

const quiet = () => undefined;

export async function startTestDevnet(settings: Settings, port = 0): Promise<Devnet> {
  const devnet = await startLocalDevnet(settings, { port, log: process.env.MINERFLOW_TEST_LOG ? console.log : quiet });
  settings.chain.url = devnet.url;
  return devnet;
}

/** A devnet for one test file (before its tests, closed after); returns a getter for it. */
export function useDevnet(settings: Settings): () => Devnet {
  let devnet: Devnet | undefined;
  before(async () => {
    devnet = await startTestDevnet(settings);
  });
  after(async () => {
    await devnet?.close();
  });
  return () => {
    if (!devnet) throw new Error('the devnet starts in before(); use it inside a test');
    return devnet;
  };
}
