// `gradients serve` as assembled for real: the miner's hotkey from its wallet file, validators'
// stakes from the devnet's metagraph through the subtensor adapter, the record and offer book
// under the data folder. A staked validator's offer is answered; a registered validator below
// 1000 TAO and an unregistered one are refused (403); a bad config names the field.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { readServeConfig, startMinerService, type MinerService } from '../cli/gradients';
import { SubtensorChain, disconnectAllChains } from '../infra/chain/subtensor';
import { startDevnet, type Devnet } from '../infra/devnet/server';
import { createHotkey } from '../infra/wallet';
import { parsePhases } from '../subnets/connito/phases';
import { ValidatorClient } from '../subnets/gradients/validator-client';
import { FAST_PHASES, tempDir, testSettings } from './helpers/settings';

const NETUID = 56;
// The devnet's chain clock runs Connito's phases; Gradients reads only its metagraph.
const PHASES = parsePhases(FAST_PHASES);
let devnet: Devnet;
let miner: MinerService;
let rich: KeyringPair, poor: KeyringPair, stranger: KeyringPair;
let configFile: string;

before(async () => {
  await cryptoWaitReady();
  const settings = testSettings();
  const minerAddress = (await createHotkey(settings.walletsDir, 'gminer', 'default')).address;
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  rich = keyring.addFromUri('//gradients-serve-rich');
  poor = keyring.addFromUri('//gradients-serve-poor');
  stranger = keyring.addFromUri('//gradients-serve-stranger');
  devnet = await startDevnet({
    blockMs: 250,
    phases: PHASES,
    register: [
      { netuid: NETUID, address: minerAddress },
      { netuid: NETUID, address: rich.address, stakeRao: 5_000e9 },
      { netuid: NETUID, address: poor.address, stakeRao: 999e9 },
    ],
  });
  const chain = await SubtensorChain.connect({ url: devnet.url, phases: PHASES, blockMs: 250 });
  configFile = path.join(tempDir(), 'gradients.json');
  await fs.writeFile(
    configFile,
    JSON.stringify({
      wallet: 'gminer',
      hotkey: 'default',
      netuid: NETUID,
      pools: [{ name: 'cpu', memoryBytes: 8 * 1024 ** 3 }],
      policy: { reserveSeconds: 300 },
    }),
  );
  miner = await startMinerService({
    settings,
    config: await readServeConfig(configFile),
    chain,
    jobs: {
      start: () => Promise.resolve(),
      running: () => Promise.resolve(false),
      submission: () => Promise.resolve(undefined),
    },
    poolView: { loads: () => Promise.resolve([]) },
    host: '127.0.0.1',
    port: 0,
  });
  assert.equal(miner.minerHotkey, minerAddress);
});

after(async () => {
  await miner?.close();
  await disconnectAllChains();
  await devnet?.close();
});

const offer = {
  model: 'Qwen/Qwen2.5-0.5B',
  task_id: 'serve-1',
  task_type: 'InstructTextTask' as const,
  hours_to_complete: 3,
  ds_size: 1000,
};

test('validators are checked against the chain’s metagraph: stake ≥ 1000 TAO answered, less or unregistered refused', async () => {
  const ask = (pair: KeyringPair) =>
    new ValidatorClient(pair, miner.service.url, miner.minerHotkey).request('POST', '/task_offer/', offer);
  const ok = await ask(rich);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal((ok.body as { accepted: boolean }).accepted, true);
  const low = await ask(poor);
  assert.equal(low.status, 403);
  assert.match((low.body as { detail: string }).detail, /Insufficient stake of 999/);
  const unknown = await ask(stranger);
  assert.equal(unknown.status, 403);
  assert.match((unknown.body as { detail: string }).detail, /Hotkey not found in metagraph/);
});

test('a bad serve config is refused with the field named', async () => {
  const bad = path.join(tempDir(), 'bad.json');
  await fs.writeFile(
    bad,
    JSON.stringify({
      wallet: 'w',
      hotkey: 'h',
      pools: [
        { name: 'cpu', memoryBytes: 1 },
        { name: 'cpu', memoryBytes: 1, trainer: 'jax' },
      ],
      policy: { reserveFraction: 2 },
    }),
  );
  await assert.rejects(readServeConfig(bad), (err: Error) => {
    assert.match(err.message, /pools\.1\.trainer = "jax"/);
    assert.match(err.message, /policy\.reserveFraction = 2/);
    return true;
  });
});
