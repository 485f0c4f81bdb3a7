// Connito's preflight on its own (MockActivityEnvironment, a Chain port of our own): what cannot be
// fixed by waiting fails at once, naming it; a chain or store that does not answer is a retryable
// failure (the workflow's preflight policy retries it a few times), so one network blip does not
// end a cycle before it starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Chain } from '../infra/chain/chain';
import { openStore } from '../infra/runtime';
import type { CheckpointStore } from '../infra/store/store';
import { ensureHotkey } from '../infra/wallet';
import { MinerSchema } from '../subnets/connito/config';
import { makePreflight, type PreflightReport } from '../subnets/connito/preflight';
import { testSettings } from './helpers/settings';

function chainWith(uid: number | null): Chain {
  return {
    name: 'fake',
    schedule: async () => ({ block: 120, atMs: Date.now(), blockMs: 12_000, origin: 0, phases: [] }),
    blockNumber: async () => 120,
    uid: async () => uid,
    commit: async () => ({ block: 0 }),
    commitment: async () => null,
    commitments: async () => new Map(),
    neurons: async () => [],
    score: async () => null,
    close: async () => undefined,
  };
}

/** The worker's file store, whose first `failures` writes fail as a network store's would. */
function flakyStore(dir: string, failures: number): CheckpointStore {
  const store = openStore(dir);
  let left = failures;
  return Object.assign(Object.create(store) as CheckpointStore, {
    uri: store.uri,
    put: async (key: string, file: string) => {
      if (left-- > 0) throw new Error('connect ECONNREFUSED 127.0.0.1:9000');
      return store.put(key, file);
    },
  });
}

async function preflight(opts: { chain?: () => Promise<Chain>; wallet?: string }): Promise<PreflightReport> {
  const settings = testSettings();
  await ensureHotkey(settings.walletsDir, 'default', 'default');
  const store = openStore(settings.store);
  const run = makePreflight(settings, store, opts.chain ?? (async () => chainWith(7)));
  return new MockActivityEnvironment().run(run, { miner: MinerSchema.parse({ wallet: opts.wallet ?? 'default' }) });
}

/** A failure Temporal retries: not a non-retryable ApplicationFailure (activities/errors.ts maps those). */
function retryable(err: unknown): boolean {
  return !(err instanceof ApplicationFailure && err.nonRetryable);
}

test('a healthy worker: the hotkey, its uid, the chain head and the store', async () => {
  const r = await preflight({});
  assert.equal(r.uid, 7);
  assert.equal(r.block, 120);
  assert.match(r.hotkey, /^5/);
});

test('a store that does not answer: a retryable failure naming the store and what to check; the next attempt passes', async () => {
  let attempts = 0;
  const settings = testSettings();
  await ensureHotkey(settings.walletsDir, 'default', 'default');
  const store = flakyStore(settings.store, 1);
  const run = makePreflight(settings, store, async () => chainWith(7));
  const miner = MinerSchema.parse({});
  for (;;) {
    attempts++;
    try {
      await new MockActivityEnvironment().run(run, { miner });
      break;
    } catch (err) {
      assert.ok(retryable(err), `attempt ${attempts}: ${String(err)} must be retried`);
      assert.match((err as Error).message, /store file:.* does not take writes: connect ECONNREFUSED.*MINERFLOW_STORE/);
      assert.equal(attempts, 1, 'only the first write fails');
    }
  }
  assert.equal(attempts, 2);
});

test('a chain that cannot be reached: a retryable failure naming the chain', async () => {
  await assert.rejects(
    preflight({ chain: async () => Promise.reject(new Error('ws://127.0.0.1:1 refused the connection')) }),
    (err) => retryable(err) && /^chain: ws:\/\/127\.0\.0\.1:1 refused/.test((err as Error).message),
  );
});

test('what waiting cannot fix fails at once: an unregistered hotkey, a missing wallet', async () => {
  await assert.rejects(
    preflight({ chain: async () => chainWith(null) }),
    (err) =>
      !retryable(err) &&
      (err as ApplicationFailure).type === 'ChainRejectedError' &&
      /is not registered on netuid 102/.test((err as Error).message),
  );
  await assert.rejects(
    preflight({ wallet: 'nobody' }),
    (err) =>
      !retryable(err) && (err as ApplicationFailure).type === 'WalletError' && /nobody/.test((err as Error).message),
  );
});
