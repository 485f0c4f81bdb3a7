// Connito's preflight (control queue), at cycle start: everything the commit stage will need,
// checked before a minute of curation and training is spent — the hotkey loads, it is registered
// on the netuid, the chain answers, the store takes a write. Each failure is named; found here it
// costs seconds, found at commit time it costs the round. A bad wallet or an unregistered hotkey is
// permanent; a chain or store that does not answer is retried a few times (a blip) before the cycle
// fails naming it.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { heartbeat } from '@temporalio/activity';
import { parseOrExplain } from '../../common/config';
import { mapErrors } from '../../activities/errors';
import { ChainRejectedError, type Chain } from '../../infra/chain/chain';
import type { Settings } from '../../infra/settings';
import type { CheckpointStore } from '../../infra/store/store';
import { loadHotkey } from '../../infra/wallet';
import { MinerSchema, type MinerInput } from './config';

export interface PreflightReport {
  hotkey: string; // ss58 address
  uid: number;
  block: number; // the chain's head when checked
  store: string;
}

/** The store or the chain could not be used: retried (the workflow's preflight policy), then the cycle fails naming it. */
export class PreflightError extends Error {
  override name = 'PreflightError';
}

export function makePreflight(settings: Settings, store: CheckpointStore, chain: () => Promise<Chain>) {
  return async function preflight(input: { miner: MinerInput }): Promise<PreflightReport> {
    return mapErrors(async () => {
      const miner = parseOrExplain(MinerSchema, input.miner, 'preflight input miner');
      heartbeat({ check: 'wallet' });
      const pair = await loadHotkey(settings.walletsDir, miner.wallet, miner.hotkey);
      heartbeat({ check: 'chain' });
      const c = await chain().catch((err: Error) => {
        throw new PreflightError(`chain: ${err.message}`);
      });
      const { block } = await c.schedule();
      const uid = await c.uid(pair.address, miner.netuid);
      if (uid === null) {
        throw new ChainRejectedError(
          `miner: hotkey ${pair.address} (wallet '${miner.wallet}', hotkey '${miner.hotkey}') is not registered on netuid ${miner.netuid}; register it (btcli subnet register) or fix miner.netuid`,
        );
      }
      heartbeat({ check: 'store' });
      await storeTakesWrites(settings, store);
      return { hotkey: pair.address, uid, block, store: store.uri };
    });
  };
}

/** A small object written under preflight/ and read back: the store exists, is reachable and writable. */
async function storeTakesWrites(settings: Settings, store: CheckpointStore): Promise<void> {
  const id = randomUUID(); // cycles may check at once, from one worker or several
  const key = `preflight/${id}.txt`;
  const file = path.join(settings.dataDir, 'work', 'preflight', `${id}.txt`);
  const text = `minerflow preflight ${id}\n`;
  try {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, text);
    await store.put(key, file);
    const back = await fs.readFile(await store.get(key), 'utf8');
    if (back !== text) throw new Error('what was read back differs from what was written');
    await store.delete(key);
  } catch (err) {
    throw new PreflightError(
      `store ${store.uri} does not take writes: ${(err as Error).message}; check MINERFLOW_STORE and its credentials`,
    );
  } finally {
    await fs.rm(file, { force: true });
  }
}
