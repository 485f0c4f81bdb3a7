// The devnet as the Bittensor Python SDK sees it (Connito's pins: bittensor 10.5.0 with
// async-substrate-interface 2.2.1, in .tools/venv): test/python/sdk_check.py connects, reads what
// our @polkadot/api adapter committed and the metagraph, and commits for our adapter to read back.
// Every figure the SDK reports is checked against the devnet's storage read with @polkadot/api.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { Codec } from '@polkadot/types/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { SubtensorChain, disconnectAllChains } from '../infra/chain/subtensor';
import { SUBTENSOR_SIGNED_EXTENSIONS } from '../infra/devnet/metadata';
import { startDevnet, type Devnet } from '../infra/devnet/server';
import { projectRoot } from '../infra/paths';
import { createHotkey, loadHotkey } from '../infra/wallet';
import { parsePhases, phaseWindow } from '../subnets/connito/phases';
import type { LocalValidator } from '../subnets/connito/validator';
import { tempDir } from './helpers/settings';

const NETUID = 102;
// A long MinerCommit1 window, so our commitment lands in it however busy the host is.
const PHASES = parsePhases(
  'Distribute:1,Train:1,MinerCommit1:30,MinerCommit2:2,Submission:1,Validate:2,Merge:1,ValidatorCommit1:1,ValidatorCommit2:1',
);
const STAKE_RAO = { other: 4_000_000_000, miner: 1_500_000_000 };

let devnet: Devnet;
let api: ApiPromise;
let chain: SubtensorChain;
let wallets: string;
let miner: KeyringPair;
let other: KeyringPair;
let stranger: string;

// The devnet's validator, reduced to its output: every submitter of the round gets the same reward,
// so Incentive and LastUpdate are written for the miner and not for the other hotkey.
const validator: LocalValidator = async (round, submissions) =>
  new Map(submissions.map((s) => [s.hotkey, { round, loss: 1, baselineLoss: 2, rawScore: 1, reward: 1 }]));

before(async () => {
  await cryptoWaitReady();
  wallets = tempDir();
  await createHotkey(wallets, 'miner', 'hk');
  miner = await loadHotkey(wallets, 'miner', 'hk');
  stranger = (await createHotkey(wallets, 'stranger', 'hk')).address;
  other = new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri('//sdk-test-other');
  devnet = await startDevnet({
    blockMs: 250,
    phases: PHASES,
    register: [
      { netuid: NETUID, address: other.address, stakeRao: STAKE_RAO.other },
      { netuid: NETUID, address: miner.address, stakeRao: STAKE_RAO.miner },
    ],
    validator,
  });
  api = await ApiPromise.create({
    provider: new WsProvider(devnet.url),
    signedExtensions: SUBTENSOR_SIGNED_EXTENSIONS,
    noInitWarn: true,
  });
  chain = await SubtensorChain.connect({ url: devnet.url, phases: PHASES, blockMs: 250 });
});

after(async () => {
  await api?.disconnect();
  await disconnectAllChains();
  await devnet?.close();
});

/** Runs test/python/sdk_check.py with the venv's Python (without blocking the devnet) and parses its JSON. */
async function sdk<T>(args: string[]): Promise<T> {
  const root = projectRoot();
  const python = path.join(root, '.tools', 'venv', 'bin', 'python');
  if (!existsSync(python))
    throw new Error(
      `${python} is missing: run \`npm test\` (its setup creates it) or \`bash scripts/setup-python.sh\``,
    );
  const { stdout } = await promisify(execFile)(python, [path.join(root, 'test', 'python', 'sdk_check.py'), ...args], {
    timeout: 180_000,
    maxBuffer: 1 << 20,
  });
  const mark = 'sdk_check result: ';
  const line = stdout.split('\n').find((l) => l.startsWith(mark));
  if (!line) throw new Error(`sdk_check.py printed no result line:\n${stdout}`);
  return JSON.parse(line.slice(mark.length)) as T;
}

async function untilBlock(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((r) => setTimeout(r, 100));
}

interface SdkRead {
  block: number;
  subnet_exists: boolean;
  commitments: Record<string, string>;
  metagraph: {
    block: number;
    n: number;
    uids: number[];
    hotkeys: string[];
    coldkeys: string[];
    stake: number[];
    last_update: number[];
    incentive: number[];
  };
  metagraph_info: {
    netuid: number;
    num_uids: number;
    tempo: number;
    block: number;
    hotkeys: string[];
    incentives: number[];
    total_stake: number[];
  };
  full_neuron_hotkeys: string[];
  by_hotkey: Record<string, { registered: boolean; uid: number; commitment: string }>;
  tempo: number;
  neurons: {
    uid: number;
    hotkey: string;
    coldkey: string;
    is_null: boolean;
    stake: number;
    incentive: number;
    last_update: number;
  }[];
}

interface SdkCommit {
  success: boolean;
  message: string;
  error: string | null;
  block_hash: string | null;
}

const numbers = (v: Codec) => (v as unknown as { toNumber(): number }[]).map((x) => x.toNumber());

test('the SDK reads our commitment and a metagraph (hotkeys, uids, stake, last_update, incentive) as the devnet holds them', async () => {
  const window = phaseWindow({ origin: 0, phases: PHASES }, 0, 'MinerCommit1');
  await untilBlock(() => devnet.chain.head().number >= window.start);
  const payload = '{"m":"our commit 1, through @polkadot/api"}';
  const { block: committedAt } = await chain.commit(miner, NETUID, payload);
  assert.ok(committedAt < window.end, `committed at ${committedAt}, in the window [${window.start}, ${window.end})`);
  // The validator scores the round once Validate begins and writes Incentive and LastUpdate a block later.
  await untilBlock(() => devnet.chain.validatorReport(NETUID, miner.address) !== null);
  const at = devnet.chain.head(); // the scores are in its state

  const read = await sdk<SdkRead>(['read', devnet.url, String(NETUID), String(at.number)]);
  assert.ok(read.block >= at.number, `subtensor.block ${read.block} is the head, at least ${at.number}`);
  assert.equal(read.subnet_exists, true, 'SubtensorModule.NetworksAdded[102]');
  assert.deepEqual(read.commitments, { [miner.address]: payload });

  const state = await api.at(at.hash);
  const incentive = numbers(await state.query.subtensorModule.incentive(NETUID));
  const lastUpdate = numbers(await state.query.subtensorModule.lastUpdate(NETUID));
  assert.deepEqual(incentive, [0, 65535], 'the round had one submitter: the miner (uid 1)');
  assert.ok(lastUpdate[1] > 0 && lastUpdate[0] === 0, 'lastUpdate[1] > 0 && lastUpdate[0] === 0');
  const m = read.metagraph;
  assert.equal(m.n, 2);
  assert.deepEqual(m.uids, [0, 1]);
  assert.deepEqual(m.hotkeys, [other.address, miner.address]);
  assert.deepEqual(m.coldkeys, m.hotkeys, 'each hotkey is its own owner on the devnet');
  assert.deepEqual(m.stake, [STAKE_RAO.other / 1e9, STAKE_RAO.miner / 1e9], 'stake in TAO');
  assert.deepEqual(m.last_update, lastUpdate);
  assert.deepEqual(
    m.incentive.map((x) => Math.round(x * 65535)),
    incentive,
    'incentive is Incentive[uid] / 65535',
  );

  // The same figures through the other runtime calls: get_selective_mechagraph and get_neurons.
  const info = read.metagraph_info;
  assert.equal(info.netuid, NETUID);
  assert.equal(info.num_uids, 2);
  assert.equal(info.block, at.number);
  assert.equal(info.tempo, (await state.query.subtensorModule.tempo(NETUID)).toJSON());
  assert.deepEqual(info.hotkeys, m.hotkeys);
  assert.deepEqual(info.incentives, m.incentive);
  assert.deepEqual(info.total_stake, m.stake);
  assert.deepEqual(read.full_neuron_hotkeys, m.hotkeys);
  assert.deepEqual(read.by_hotkey, {
    [other.address]: { registered: true, uid: 0, commitment: '' },
    [miner.address]: { registered: true, uid: 1, commitment: payload },
  });
  assert.equal(read.tempo, info.tempo);

  for (const uid of [0, 1]) {
    const n = read.neurons[uid];
    assert.equal(n.is_null, false);
    assert.equal(n.uid, uid);
    assert.equal(n.hotkey, m.hotkeys[uid]);
    assert.equal(n.coldkey, m.coldkeys[uid]);
    assert.equal(n.stake, m.stake[uid]);
    assert.equal(n.incentive, m.incentive[uid]);
    assert.equal(n.last_update, m.last_update[uid]);
  }
});

test('set_commitment through the SDK, signed by a registered hotkey, is read back by our adapter', async () => {
  const data = '{"e":3,"h":"0123456789abcdef0123456789abcdef0123456789abcdef","v":7}';
  const result = await sdk<SdkCommit>(['commit', devnet.url, String(NETUID), wallets, 'miner', 'hk', data]);
  assert.equal(result.success, true, result.message);
  const read = await chain.commitment(miner.address, NETUID);
  assert.equal(read?.payload, data);
  const header = await api.rpc.chain.getHeader(result.block_hash!);
  assert.equal(read?.block, header.number.toNumber(), 'stored at the block the SDK saw it included in');
});

test('set_commitment through the SDK by an unregistered hotkey fails with the pallet error AccountNotAllowedCommit', async () => {
  const result = await sdk<SdkCommit>(['commit', devnet.url, String(NETUID), wallets, 'stranger', 'hk', '{"h":"x"}']);
  assert.equal(result.success, false);
  assert.match(result.error ?? '', /AccountNotAllowedCommit/);
  assert.equal(await chain.commitment(stranger, NETUID), null);
});
