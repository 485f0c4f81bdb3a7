// Connito's commit activities on their own (MockActivityEnvironment, a Chain port of our own): a
// retry whose commitment already landed inside the window (its worker died after submitting) is
// done, not re-sent; anything else — another hash's signature, our payload from an earlier round —
// is sent. test/crash.e2e.test.ts kills real workers inside the windows; this pins the idempotency
// check itself, whatever the timing of a kill.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { Chain } from '../infra/chain/chain';
import { ensureHotkey } from '../infra/wallet';
import { makeCommit } from '../subnets/connito/commit';
import { encodeLocationCommit, encodeSignatureCommit } from '../subnets/connito/commitments';
import { MinerSchema } from '../subnets/connito/config';
import type { CommitReceipt, CommitWindow } from '../subnets/connito/types';
import { testSettings } from './helpers/settings';

const HASH = 'a'.repeat(48);
const OTHER = 'b'.repeat(48);
const WINDOW: CommitWindow = { round: 4, opensAt: 0, closesAt: Date.now() + 60_000, startBlock: 100, endBlock: 110 };

/** A chain at block 104 (inside WINDOW) holding `held` for the hotkey; records every commit sent. */
function chainHolding(held: { block: number; payload: string } | null) {
  const sent: string[] = [];
  let current = held;
  const chain: Chain = {
    name: 'fake',
    schedule: async () => ({ block: 104, atMs: Date.now(), blockMs: 12_000, origin: 0, phases: [] }),
    blockNumber: async () => 104,
    uid: async () => 3,
    commit: async (_signer, _netuid, payload) => {
      sent.push(payload);
      current = { block: 105, payload };
      return { block: 105 };
    },
    commitment: async () => current,
    commitments: async () => new Map(),
    neurons: async () => [],
    score: async () => null,
    close: async () => undefined,
  };
  return { chain, sent };
}

/** Runs one commit activity of `makeCommit` against `chain`, as the default hotkey. */
async function run(
  activity: 'commitSignature' | 'commitLocation',
  settings: ReturnType<typeof testSettings>,
  chain: Chain,
): Promise<CommitReceipt> {
  const fn = makeCommit(settings, async () => chain)[activity];
  const input = { miner: MinerSchema.parse({}), hash: HASH, window: WINDOW };
  return (await new MockActivityEnvironment().run(fn, input)) as CommitReceipt;
}

/** The default hotkey in a fresh wallets folder. */
async function hotkey() {
  const settings = testSettings();
  return { settings, pair: await ensureHotkey(settings.walletsDir, 'default', 'default') };
}

const signatureOf = (pair: KeyringPair, hash: string) =>
  encodeSignatureCommit(Buffer.from(pair.sign(hash)).toString('base64url'));

test('commit 1 whose signature already landed in the window: the landed receipt, nothing re-sent', async () => {
  const { settings, pair } = await hotkey();
  const landed = signatureOf(pair, HASH); // an earlier attempt's (sr25519 signatures differ each time)
  const { chain, sent } = chainHolding({ block: 102, payload: landed });
  const receipt = await run('commitSignature', settings, chain);
  assert.deepEqual(sent, []);
  assert.equal(receipt.block, 102);
  assert.equal(receipt.payload, landed);
});

test('commit 1 is sent when what the chain holds is not ours for this hash and window', async () => {
  for (const held of [
    (pair: KeyringPair) => ({ block: 102, payload: signatureOf(pair, OTHER) }), // another checkpoint's signature
    (pair: KeyringPair) => ({ block: 90, payload: signatureOf(pair, HASH) }), // ours, from before the window
  ]) {
    const { settings, pair } = await hotkey();
    const { chain, sent } = chainHolding(held(pair));
    const receipt = await run('commitSignature', settings, chain);
    assert.equal(sent.length, 1);
    assert.equal(receipt.block, 105);
  }
});

test('commit 2 already included in its window: the landed receipt, nothing re-sent; otherwise sent once', async () => {
  const payload = encodeLocationCommit({ h: HASH, v: 0 });
  const { settings, pair } = await hotkey();
  const landed = chainHolding({ block: 107, payload });
  const r = await run('commitLocation', settings, landed.chain);
  assert.deepEqual(landed.sent, []);
  assert.equal(r.block, 107);

  // The chain still holds our commit 1: commit 2 goes out, once.
  const { chain, sent } = chainHolding({ block: 101, payload: signatureOf(pair, HASH) });
  const fresh = await run('commitLocation', settings, chain);
  assert.deepEqual(sent, [payload]);
  assert.equal(fresh.block, 105);
});
