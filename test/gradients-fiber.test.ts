// fiber's nonce rules on a controlled clock (single use, ±120 s, none from before a restart) and
// the metagraph cache (a failed refresh keeps the last stakes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metagraph, newNonce, NonceStore } from '../subnets/gradients/fiber';
import type { Neuron } from '../infra/chain/chain';

test('nonces: form, window edges, replays, none from before the store began, and forgetting after the window', () => {
  let now = Date.parse('2026-12-01T10:00:00Z');
  const store = new NonceStore(() => now);
  now += 1_000;
  assert.match(newNonce(now), /^\d{19}_[A-Za-z0-9]{10}$/);
  assert.equal(store.check('abc_def'), 'malformed');
  assert.equal(store.check(''), 'malformed');
  assert.equal(store.use(newNonce(now - 120_001)), 'stale');
  assert.equal(store.use(newNonce(now + 120_001)), 'future');
  assert.equal(store.use(newNonce(now - 1_500)), 'before-start', 'stamped before the store (a restart) began');
  const n = newNonce(now - 500);
  assert.equal(store.check(n), 'ok');
  assert.equal(store.use(n), 'ok');
  assert.equal(store.use(n), 'replayed');
  assert.equal(store.use(newNonce(now + 120_000)), 'ok', 'the window edge is inside');
  // After the window the nonce is stale anyway, and the store forgets it.
  now += 3 * 120_000;
  assert.equal(store.use(n), 'stale');
  assert.equal(store.use(newNonce(now)), 'ok');
  assert.equal(store.size, 1);
});

test('the metagraph cache answers from the last read, and a failed refresh keeps it', async () => {
  let neurons: Neuron[] | Error = [{ hotkey: 'v1', uid: 0, stake: 2000, lastUpdate: 0 }];
  const chain = {
    neurons: (netuid: number) => {
      assert.equal(netuid, 56);
      return neurons instanceof Error ? Promise.reject(neurons) : Promise.resolve(neurons);
    },
  };
  const graph = new Metagraph(chain, 56, 60_000);
  await graph.start();
  assert.equal(graph.stakeOf('v1'), 2000);
  assert.equal(graph.stakeOf('v2'), undefined);
  neurons = [{ hotkey: 'v2', uid: 1, stake: 10, lastUpdate: 0 }];
  await graph.refresh();
  assert.equal(graph.stakeOf('v1'), undefined);
  assert.equal(graph.stakeOf('v2'), 10);
  neurons = new Error('chain down');
  await assert.rejects(graph.refresh(), /chain down/);
  assert.equal(graph.stakeOf('v2'), 10);
  graph.stop();
});
