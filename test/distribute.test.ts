// Distribute: the global model is the validators' stake-weighted majority, counted as Connito's
// miners count it (whitelist, fresh weights, complete commits, verified signatures, version range),
// read from the chain as of the end of each validator commit phase.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady, signatureVerify } from '@polkadot/util-crypto';
import { decodeSignatureCommit, decodeValidatorCommit } from '../subnets/connito/commitments';
import type { Neuron } from '../infra/chain/chain';
import { SubtensorChain } from '../infra/chain/subtensor';
import { startDevnet, type Devnet } from '../infra/devnet/server';
import { chooseGlobalModel, type DistributeInput } from '../subnets/connito/distribute';
import { parsePhases } from '../subnets/connito/phases';

const H1 = 'a'.repeat(48);
const H2 = 'b'.repeat(48);
let keys: Record<'v1' | 'v2' | 'v3' | 'miner', KeyringPair>;

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  keys = {
    v1: keyring.addFromUri('//distribute-v1'),
    v2: keyring.addFromUri('//distribute-v2'),
    v3: keyring.addFromUri('//distribute-v3'),
    miner: keyring.addFromUri('//distribute-miner'),
  };
});

const sign = (k: KeyringPair, hash: string) => JSON.stringify({ m: Buffer.from(k.sign(hash)).toString('base64url') });
const locate = (hash: string, v = 1000, extra: object = {}) =>
  JSON.stringify({ h: hash, v, e: 0, r: 'validator/global', rv: 'abcdef1', ...extra });

/** Three whitelisted validators with fresh weights: v1 and v2 back H1 (stake 30 + 30), v3 backs H2 (stake 50). */
function world(): DistributeInput {
  const neurons: Neuron[] = [
    { hotkey: keys.v1.address, uid: 0, stake: 30, lastUpdate: 990 },
    { hotkey: keys.v2.address, uid: 1, stake: 30, lastUpdate: 995 },
    { hotkey: keys.v3.address, uid: 2, stake: 50, lastUpdate: 999 },
    { hotkey: keys.miner.address, uid: 3, stake: 1000, lastUpdate: 0 },
  ];
  return {
    signed: new Map([
      [keys.v1.address, { payload: sign(keys.v1, H1) }],
      [keys.v2.address, { payload: sign(keys.v2, H1) }],
      [keys.v3.address, { payload: sign(keys.v3, H2) }],
      [keys.miner.address, { payload: sign(keys.miner, H2) }],
    ]),
    located: new Map([
      [keys.v1.address, { payload: locate(H1) }],
      [keys.v2.address, { payload: locate(H1) }],
      [keys.v3.address, { payload: locate(H2, 1000, { r: 'other/global', rv: '1234567' }) }],
      [keys.miner.address, { payload: locate(H2) }],
    ]),
    neurons,
    whitelist: [keys.v1.address, keys.v2.address, keys.v3.address],
    block: 1000,
    cycleLength: 500,
    versions: { min: 250, max: 1000 },
  };
}

test('the majority is by stake, summed over the validators that back a hash', () => {
  const { model, excluded } = chooseGlobalModel(world());
  assert.equal(model?.hash, H1, '30 + 30 beats 50');
  assert.equal(model?.stake, 60);
  assert.deepEqual(
    model?.validators.map((v) => v.hotkey),
    [keys.v1.address, keys.v2.address],
  );
  assert.deepEqual(
    [model?.repo, model?.revision, model?.globalVer, model?.expertGroup],
    ['validator/global', 'abcdef1', 1000, 0],
  );
  assert.deepEqual(
    excluded.map((e) => [e.hotkey, e.reason]),
    [
      [keys.miner.address, 'not in the validator whitelist'],
      [keys.v3.address, `minority hash ${H2}`],
    ],
  );
});

test('a miner with a big stake is not a validator; stale weights, bad signatures and old versions do not count', () => {
  const cases: [string, (w: DistributeInput) => void, RegExp][] = [
    [
      'v1 stale',
      (w) => (w.neurons[0].lastUpdate = 400),
      /stale weights \(set 600 blocks ago, more than a cycle of 500\)/,
    ],
    [
      'v2 signed another hash',
      (w) => w.signed.set(keys.v2.address, { payload: sign(keys.v2, H2) }),
      /signature does not verify/,
    ],
    [
      'v1 signature by someone else',
      (w) => w.signed.set(keys.v1.address, { payload: sign(keys.v3, H1) }),
      /signature does not verify/,
    ],
    ['v2 no signature commit', (w) => w.signed.delete(keys.v2.address), /no signature commitment/],
    [
      'v1 old version',
      (w) => w.located.set(keys.v1.address, { payload: locate(H1, 100) }),
      /global version 100 outside the allowed 250\.\.1000/,
    ],
    [
      'v2 no repo',
      (w) => w.located.set(keys.v2.address, { payload: JSON.stringify({ h: H1, v: 1000 }) }),
      /names no Hugging Face repo/,
    ],
    [
      'v1 commit 1 still there',
      (w) => w.located.set(keys.v1.address, w.signed.get(keys.v1.address)!),
      /no hash commitment at the end of ValidatorCommit2/,
    ],
  ];
  for (const [name, spoil, reason] of cases) {
    const w = world();
    spoil(w);
    const { model, excluded } = chooseGlobalModel(w);
    assert.equal(model?.hash, H2, `${name}: H1 loses one of its two validators, so v3's 50 wins`);
    assert.ok(
      excluded.some((e) => reason.test(e.reason)),
      `${name}: ${JSON.stringify(excluded)}`,
    );
  }
});

test('no validator, no model: the reasons say why', () => {
  const w = world();
  w.whitelist = [];
  const { model, excluded } = chooseGlobalModel(w);
  assert.equal(model, undefined);
  assert.equal(excluded.filter((e) => e.reason === 'not in the validator whitelist').length, 4);
});

let devnet: Devnet;
let chain: SubtensorChain;
after(async () => {
  await chain?.close();
  await devnet?.close();
});

test('commitments and neurons are read as of a past block, as Distribute reads them', async () => {
  devnet = await startDevnet({
    blockMs: 100,
    phases: parsePhases(
      'Distribute:2,Train:20,MinerCommit1:10,MinerCommit2:10,Submission:4,Validate:4,Merge:2,ValidatorCommit1:1,ValidatorCommit2:1',
    ),
    register: [
      { netuid: 102, address: keys.v1.address },
      { netuid: 102, address: keys.miner.address },
    ],
  });
  chain = await SubtensorChain.connect({ url: devnet.url, phases: [], blockMs: 12_000 });
  const first = await chain.commit(keys.v1, 102, sign(keys.v1, H1));
  const second = await chain.commit(keys.v1, 102, locate(H1));
  assert.ok(second.block > first.block, 'second.block > first.block');
  const then = await chain.commitments(102, first.block);
  const now = await chain.commitments(102, second.block);
  assert.deepEqual([...then.keys()], [keys.v1.address], 'only v1 committed');
  const sig = decodeSignatureCommit(then.get(keys.v1.address)!.payload);
  assert.ok(sig && signatureVerify(H1, Buffer.from(sig.m, 'base64url'), keys.v1.address).isValid, 'commit 1 as sent');
  assert.ok(decodeValidatorCommit(now.get(keys.v1.address)!.payload), 'the later block holds commit 2');
  assert.equal(
    decodeValidatorCommit(then.get(keys.v1.address)!.payload),
    undefined,
    'the earlier block still holds commit 1',
  );
  assert.equal((await chain.commitments(102, first.block - 1)).size, 0, 'nothing before it');
  assert.deepEqual(
    (await chain.neurons(102)).map((n) => [n.uid, n.hotkey]),
    [
      [0, keys.v1.address],
      [1, keys.miner.address],
    ],
  );
});
