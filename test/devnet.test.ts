// The devnet as @polkadot/api and a raw JSON-RPC client see it: real subtensor metadata, headers
// hashed as substrate hashes them, storage that decodes, and a pool that refuses what subtensor's
// refuses (bad signatures, reused nonces) and runtime errors reported as the pallet's own.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import type { Codec } from '@polkadot/types/types';
import type { EventRecord } from '@polkadot/types/interfaces';
import { Metadata, TypeRegistry } from '@polkadot/types';
import { compactStripLength, hexToU8a } from '@polkadot/util';
import { blake2AsHex, cryptoWaitReady } from '@polkadot/util-crypto';
import WebSocket from 'ws';
import { parsePhases } from '../subnets/connito/phases';
import { loadSubtensorMaterial, SUBTENSOR_SIGNED_EXTENSIONS, type SubtensorNetwork } from '../infra/devnet/metadata';
import { startDevnet, type Devnet } from '../infra/devnet/server';

const PHASES = parsePhases(
  'Distribute:2,Train:20,MinerCommit1:10,MinerCommit2:10,Submission:4,Validate:4,Merge:2,ValidatorCommit1:1,ValidatorCommit2:1',
);
let devnet: Devnet;
let api: ApiPromise;
let miner: KeyringPair;
let stranger: KeyringPair;

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  miner = keyring.addFromUri('//devnet-test-miner');
  stranger = keyring.addFromUri('//devnet-test-stranger');
  const other = keyring.addFromUri('//devnet-test-other');
  devnet = await startDevnet({
    blockMs: 100,
    phases: PHASES,
    register: [
      { netuid: 102, address: other.address },
      { netuid: 102, address: miner.address },
    ],
    spacePerEpoch: 300,
  });
  api = await ApiPromise.create({
    provider: new WsProvider(devnet.url),
    signedExtensions: SUBTENSOR_SIGNED_EXTENSIONS,
    noInitWarn: true,
  });
});

after(async () => {
  await api?.disconnect();
  await devnet?.close();
});

/** One JSON-RPC call over a fresh socket: the raw answer, result or error. */
async function rawRpc(
  method: string,
  params: unknown[],
): Promise<{ result?: unknown; error?: { code: number; message: string; data?: string } }> {
  const ws = new WebSocket(devnet.url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  try {
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }));
    return await new Promise((resolve) => ws.once('message', (data) => resolve(JSON.parse(data.toString()) as never)));
  } finally {
    ws.close();
  }
}

type RpcAnswer = { id?: number; result?: unknown; error?: { code: number; message: string; data?: string } };

/** JSON-RPC calls sent back to back over one fresh socket: the answers in the calls' order. */
async function rawRpcs(calls: [string, unknown[]][]): Promise<RpcAnswer[]> {
  const ws = new WebSocket(devnet.url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  try {
    const answers = new Map<number, RpcAnswer>();
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        const answer = JSON.parse(data.toString()) as RpcAnswer & { id: number };
        answers.set(answer.id, answer);
        if (answers.size === calls.length) resolve();
      }),
    );
    calls.forEach(([method, params], id) => ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params })));
    await done;
    return calls.map((_, id) => answers.get(id)!);
  } finally {
    ws.close();
  }
}

// @polkadot/api is not augmented with subtensor's pallets: name the shapes the tests read.
type AccountInfo = Codec & { nonce: { toNumber(): number } };
type Registration = { block: { toNumber(): number }; info: { fields: (Codec & { type: string; value: Codec })[] } };
type OptionOf<T> = Codec & { isNone: boolean; unwrap(): T };

function commitTx(text: string): SubmittableExtrinsic<'promise'> {
  const bytes = Buffer.from(text, 'utf8');
  return api.tx.commitments.setCommitment(102, { fields: [{ [`Raw${bytes.length}`]: bytes }] });
}

/** Sends and waits for inclusion; resolves with the decoded dispatch error's name, if any. */
function sendAndWait(
  tx: SubmittableExtrinsic<'promise'>,
  signer: KeyringPair,
): Promise<{ blockHash: string; error?: string }> {
  return new Promise((resolve, reject) => {
    tx.signAndSend(signer, { nonce: -1 }, ({ status, dispatchError }) => {
      if (!status.isInBlock) return;
      const error = dispatchError?.isModule
        ? (({ section, name }) => `${section}.${name}`)(api.registry.findMetaError(dispatchError.asModule))
        : dispatchError?.toString();
      resolve({ blockHash: status.asInBlock.toHex(), error });
    }).catch(reject);
  });
}

async function nextBlock(): Promise<void> {
  const start = devnet.chain.head().number;
  while (devnet.chain.head().number === start) await new Promise((r) => setTimeout(r, 20));
}

test('serves finney metadata (spec 365) with TAO properties, and names unknown methods in its error', async () => {
  assert.equal(api.runtimeVersion.specName.toString(), 'node-subtensor');
  assert.equal(api.runtimeVersion.specVersion.toNumber(), 365);
  assert.equal(api.registry.chainSS58, 42);
  assert.deepEqual(api.registry.chainTokens, ['TAO']);
  assert.deepEqual(api.registry.chainDecimals, [9]);
  assert.ok(api.tx.commitments.setCommitment, 'the Commitments pallet comes from the metadata');
  // The Metadata runtime API (how @polkadot/api prefers to fetch metadata): versions 15 and 16.
  assert.equal((await rawRpc('state_call', ['Metadata_metadata_versions', '0x'])).result, '0x080f00000010000000');
  assert.equal(api.runtimeMetadata.version, 16);
  const answer = await rawRpc('subtensor_noSuchMethod', []);
  assert.equal(answer.error?.code, -32601);
  assert.match(answer.error!.message, /Method not found: subtensor_noSuchMethod/);
});

test('metadata v15, offered for the Bittensor SDK, describes the same runtime as v16', async () => {
  const answer = await rawRpc('state_call', ['Metadata_metadata_at_version', '0x0f000000']);
  const option = hexToU8a(answer.result as string);
  assert.equal(option[0], 1, 'Some(metadata)');
  const v15 = new Metadata(new TypeRegistry(), compactStripLength(option.subarray(1))[1]);
  assert.equal(v15.version, 15);
  const [a, b] = [v15.asV15, api.runtimeMetadata.asV16];
  assert.equal(a.lookup.types.length, b.lookup.types.length);
  const pallets = (m: typeof a | typeof b) => m.pallets.map((p) => `${p.index.toNumber()}:${p.name.toString()}`);
  assert.deepEqual(pallets(a), pallets(b));
  const apis = (m: typeof a | typeof b) =>
    m.apis.flatMap((x) => x.methods.map((y) => `${x.name.toString()}_${y.name.toString()}->${y.output.toNumber()}`));
  assert.deepEqual(apis(a), apis(b));
  assert.ok(
    apis(a).some((x) => x.startsWith('NeuronInfoRuntimeApi_get_neurons_lite->')),
    "apis(a).some((x) => x.startsWith('NeuronInfoRuntimeApi_get_neurons_lite->'))",
  );
  assert.deepEqual(
    a.extrinsic.signedExtensions.map((e) => e.identifier.toString()),
    b.extrinsic.transactionExtensions.map((e) => e.identifier.toString()),
  );
  assert.equal((await rawRpc('state_call', ['Metadata_metadata_at_version', '0x0e000000'])).result, '0x00');
});

test('headers chain by parentHash and each hash is blake2-256 of the SCALE-encoded header', async () => {
  await nextBlock();
  const head = await api.rpc.chain.getHeader();
  const hash = await api.rpc.chain.getBlockHash(head.number.toNumber());
  assert.equal(blake2AsHex(head.toU8a()), hash.toHex());
  const parent = await api.rpc.chain.getHeader(head.parentHash);
  assert.equal(parent.number.toNumber(), head.number.toNumber() - 1);
  assert.equal(blake2AsHex(parent.toU8a()), head.parentHash.toHex());
  assert.equal(head.digest.logs[0].asPreRuntime[0].toString(), 'aura');
  const block = await api.rpc.chain.getBlock(hash);
  assert.equal(block.block.extrinsics[0].method.section, 'timestamp', 'each block opens with the timestamp inherent');
});

test('registrations and chain state decode with @polkadot/api', async () => {
  assert.equal((await api.query.subtensorModule.uids(102, miner.address)).toJSON(), 1);
  assert.equal((await api.query.subtensorModule.uids(102, stranger.address)).toJSON(), null);
  assert.equal((await api.query.subtensorModule.keys(102, 1)).toString(), miner.address);
  assert.equal((await api.query.subtensorModule.subnetworkN(102)).toJSON(), 2);
  assert.equal((await api.query.subtensorModule.tempo(102)).toJSON(), 54, 'Tempo is the phase cycle');
  const number = (await api.query.system.number()).toJSON() as number;
  assert.ok(Math.abs(number - devnet.chain.head().number) <= 1, 'Math.abs(number - devnet.chain.head().number) <= 1');
});

test('set_commitment stores the exact bytes, bumps the nonce and emits Commitments.Commitment', async () => {
  const text = '{"h":"ünïcødé ✓","v":1}';
  const nonceBefore = ((await api.query.system.account(miner.address)) as AccountInfo).nonce.toNumber();
  const { blockHash, error } = await sendAndWait(commitTx(text), miner);
  assert.equal(error, undefined);
  const reg = ((await api.query.commitments.commitmentOf(102, miner.address)) as OptionOf<Registration>).unwrap();
  const field = reg.info.fields[0];
  assert.equal(field.type, `Raw${Buffer.byteLength(text)}`, 'Raw<n> with n the UTF-8 byte length');
  assert.deepEqual(Buffer.from(field.value.toU8a(true)), Buffer.from(text, 'utf8'));
  const header = await api.rpc.chain.getHeader(blockHash);
  assert.equal(reg.block.toNumber(), header.number.toNumber());
  assert.equal(((await api.query.system.account(miner.address)) as AccountInfo).nonce.toNumber(), nonceBefore + 1);
  const events = (await (await api.at(blockHash)).query.system.events()) as unknown as EventRecord[];
  const names = events.map((e) => `${e.event.section}.${e.event.method}`);
  assert.ok(names.includes('commitments.Commitment'), names.join(', '));
  assert.ok(names.includes('system.ExtrinsicSuccess'), "names.includes('system.ExtrinsicSuccess')");
});

test('an unregistered hotkey and too many fields fail with the pallet errors, decoded from System.Events', async () => {
  assert.equal((await sendAndWait(commitTx('{"s":"x"}'), stranger)).error, 'commitments.AccountNotAllowedCommit');
  const maxFields = (api.consts.commitments.maxFields as unknown as { toNumber(): number }).toNumber();
  const tooMany = api.tx.commitments.setCommitment(102, {
    fields: Array.from({ length: maxFields + 1 }, () => ({ Raw2: '0x6869' })),
  });
  assert.equal((await sendAndWait(tooMany, miner)).error, 'commitments.TooManyFieldsInCommitmentInfo');
  assert.equal(
    ((await api.query.commitments.commitmentOf(102, stranger.address)) as OptionOf<Registration>).isNone,
    true,
  );
});

test('runtime APIs answer from storage in the metadata types, as @polkadot/api decodes them', async () => {
  // api.call is not augmented with subtensor's APIs either.
  type Call = (...args: unknown[]) => Promise<Codec & { isNone: boolean; unwrap(): Record<string, Codec> }>;
  const calls = api.call as unknown as Record<string, Record<string, Call>>;
  const neuron = (await calls.neuronInfoRuntimeApi.getNeuronLite(102, 1)).unwrap();
  assert.equal(neuron.hotkey.toString(), miner.address);
  assert.equal(neuron.uid.toString(), '1');
  assert.equal((await calls.neuronInfoRuntimeApi.getNeuronLite(102, 2)).isNone, true, 'uid 2 is not registered');
  const state = (await calls.subnetInfoRuntimeApi.getSubnetState(102)).unwrap();
  const uid0 = String(await api.query.subtensorModule.keys(102, 0));
  assert.deepEqual((state.hotkeys as unknown as Codec[]).map(String), [uid0, miner.address]);
  assert.equal((await calls.subnetInfoRuntimeApi.getSubnetState(7)).isNone, true, 'netuid 7 was never added');
  const nonce = await calls.accountNonceApi.accountNonce(miner.address);
  assert.equal(
    nonce.toString(),
    String(((await api.query.system.account(miner.address)) as AccountInfo).nonce.toNumber()),
  );
  const missing = await rawRpc('state_call', ['SwapRuntimeApi_current_alpha_price', '0x6600']);
  assert.equal(missing.error?.code, 4003);
  assert.match(missing.error!.data!, /Exported method SwapRuntimeApi_current_alpha_price is not found/);
  const bad = await rawRpc('state_call', ['NeuronInfoRuntimeApi_get_neurons_lite', '0x660000']);
  assert.match(bad.error!.data!, /arguments are 3 bytes, its inputs take 2/);
});

test('a corrupted signature is refused by the pool, naming the bad signature', async () => {
  const tx = await commitTx('{"s":"forged"}').signAsync(miner, { nonce: -1 });
  const hex = tx.toHex();
  const signature = tx.signature.toHex().slice(2);
  const flipped = signature.slice(0, 10) + (signature[10] === '0' ? '1' : '0') + signature.slice(11);
  const forged = hex.replace(signature, flipped);
  assert.notEqual(forged, hex);
  const answer = await rawRpc('author_submitExtrinsic', [forged]);
  assert.equal(answer.error?.code, 1010);
  assert.equal(answer.error?.message, 'Invalid Transaction');
  assert.match(answer.error!.data!, /bad signature/);
  // The untouched extrinsic is accepted: the refusal was the signature, nothing else.
  const ok = await rawRpc('author_submitExtrinsic', [hex]);
  assert.equal(ok.result, tx.hash.toHex());
  await nextBlock();
  await nextBlock();
});

test('a reused nonce is refused, in the pool and once included', async () => {
  const nonce = (await api.rpc.system.accountNextIndex(miner.address)).toNumber();
  const first = await commitTx('{"n":1}').signAsync(miner, { nonce });
  const second = await commitTx('{"n":2}').signAsync(miner, { nonce });
  // Both on one socket, sent together: a block in between would include the first and make the
  // second merely outdated.
  const [a, b] = await rawRpcs([
    ['author_submitExtrinsic', [first.toHex()]],
    ['author_submitExtrinsic', [second.toHex()]],
  ]);
  assert.equal(a.result, first.hash.toHex());
  assert.equal(b.error?.code, 1014, JSON.stringify(b.error));
  assert.match(b.error!.message, /Priority is too low/);
  await nextBlock();
  await nextBlock();
  const stale = await rawRpc('author_submitExtrinsic', [second.toHex()]);
  assert.equal(stale.error?.code, 1010);
  assert.match(stale.error!.data!, /outdated/);
});

test('the per-epoch commitment space runs out (each call costs at least 100 bytes)', async () => {
  // spacePerEpoch is 300 here and this epoch has seen commitments already: within a few calls it is spent.
  let error: string | undefined;
  for (let i = 0; i < 8 && !error; i++) error = (await sendAndWait(commitTx(`{"i":${i}}`), miner)).error;
  assert.equal(error, 'commitments.SpaceLimitExceeded');
});

test('the phase schedule is served by minerflow_schedule', async () => {
  const answer = (await rawRpc('minerflow_schedule', [])).result as {
    blockMs: number;
    phases: { name: string; blocks: number }[];
  };
  assert.equal(answer.blockMs, 100);
  assert.deepEqual(answer.phases, PHASES);
});

test('missing metadata says how to fetch it', () => {
  assert.throws(() => loadSubtensorMaterial('nowhere' as SubtensorNetwork), /run scripts\/setup-metadata\.sh/);
});
