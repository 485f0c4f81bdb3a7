// The subtensor adapter (Chain port over @polkadot/api) against the devnet: commitments land byte
// for byte, rejections name the chain's error, scores come from Incentive written by the devnet's
// validator, and a dropped WebSocket reconnects.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import type { Codec } from '@polkadot/types/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { parsePhases, phaseWindow } from '../subnets/connito/phases';
import { ChainRejectedError } from '../infra/chain/chain';
import type { LocalValidator } from '../subnets/connito/validator';
import { SubtensorChain } from '../infra/chain/subtensor';
import { SUBTENSOR_SIGNED_EXTENSIONS } from '../infra/devnet/metadata';
import { loadSettings } from '../infra/settings';
import { CONNITO_PHASES } from '../subnets/connito/phases';
import { startDevnet, type Devnet } from '../infra/devnet/server';

// 100 ms blocks: MinerCommit1 opens at block 22 of each 54-block round.
const PHASES = parsePhases(
  'Distribute:2,Train:20,MinerCommit1:10,MinerCommit2:10,Submission:4,Validate:4,Merge:2,ValidatorCommit1:1,ValidatorCommit2:1',
);
const BLOCK_MS = 100;
let devnet: Devnet;
let chain: SubtensorChain;
let miner: KeyringPair;
let rival: KeyringPair;
let stranger: KeyringPair;
const validated: { round: number; hotkeys: string[] }[] = [];

/** A validator with fixed rewards (the real one, which evaluates checkpoints, runs in the e2e cycle test). */
const fixedValidator: LocalValidator = async (round, submissions) => {
  validated.push({ round, hotkeys: submissions.map((s) => s.hotkey) });
  return new Map(
    submissions.map((s) => {
      const first = s.hotkey === miner.address;
      return [
        s.hotkey,
        {
          round,
          loss: first ? 2.5 : 2.7,
          baselineLoss: 5.5,
          rawScore: first ? 3.7 : 3.4,
          rank: first ? 1 : 2,
          reward: first ? 2.25 : 1.5,
        },
      ];
    }),
  );
};

function options(port = 0) {
  return {
    port,
    blockMs: BLOCK_MS,
    phases: PHASES,
    register: [
      { netuid: 102, address: miner.address },
      { netuid: 102, address: rival.address },
    ],
    validator: fixedValidator,
  };
}

before(async () => {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  miner = keyring.addFromUri('//adapter-test-miner');
  rival = keyring.addFromUri('//adapter-test-rival');
  stranger = keyring.addFromUri('//adapter-test-stranger');
  devnet = await startDevnet(options());
  chain = await SubtensorChain.connect({ url: devnet.url, phases: [], blockMs: 12_000, reconnectWaitMs: 1000 });
});

after(async () => {
  await chain?.close();
  await devnet?.close();
});

async function untilBlock(n: number): Promise<void> {
  while (devnet.chain.head().number < n) await new Promise((r) => setTimeout(r, 25));
}

test('an endpoint nobody listens on fails to connect, saying where and what to start', async () => {
  const idle = await startDevnet(options());
  const url = idle.url;
  await idle.close();
  await assert.rejects(
    SubtensorChain.connect({ url, phases: [], blockMs: 12_000 }),
    /cannot reach the chain at ws:\/\/127\.0\.0\.1:\d+: .*minerflow devnet/,
  );
});

test('uid comes from SubtensorModule.Uids; the schedule from the devnet', async () => {
  assert.equal(await chain.uid(miner.address, 102), 0);
  assert.equal(await chain.uid(rival.address, 102), 1);
  assert.equal(await chain.uid(stranger.address, 102), null);
  assert.equal(await chain.uid(miner.address, 7), null);
  const s = await chain.schedule();
  assert.deepEqual(s.phases, PHASES);
  assert.ok(
    s.blockMs >= BLOCK_MS / 2 && s.blockMs <= BLOCK_MS * 2,
    `observed block time ${s.blockMs} ms stays within 0.5–2× the nominal ${BLOCK_MS}`,
  );
  assert.ok(Math.abs(s.block - devnet.chain.head().number) <= 1, 'Math.abs(s.block - devnet.chain.head().number) <= 1');
  assert.ok(Math.abs(s.atMs - Date.now()) < 2000, 'atMs is the head block timestamp');
});

test('a commitment decodes with @polkadot/api to exactly the bytes sent, multi-byte UTF-8 included', async () => {
  const payload = '{"s":"ñandú ü € 𝄞"}';
  const { block } = await chain.commit(miner, 102, payload);
  const api = await ApiPromise.create({
    provider: new WsProvider(devnet.url),
    signedExtensions: SUBTENSOR_SIGNED_EXTENSIONS,
    noInitWarn: true,
  });
  try {
    const reg = (
      (await api.query.commitments.commitmentOf(102, miner.address)) as Codec & {
        unwrap(): { block: Codec; info: { fields: (Codec & { type: string; value: Codec })[] } };
      }
    ).unwrap();
    assert.equal(reg.info.fields.length, 1);
    assert.equal(reg.info.fields[0].type, `Raw${Buffer.byteLength(payload)}`);
    assert.ok(Buffer.byteLength(payload) > payload.length, 'the payload has multi-byte characters');
    assert.deepEqual(Buffer.from(reg.info.fields[0].value.toU8a(true)), Buffer.from(payload, 'utf8'));
    assert.equal(reg.block.toString(), String(block));
  } finally {
    await api.disconnect();
  }
  assert.deepEqual(await chain.commitment(miner.address, 102), { block, payload });
});

test('an unregistered hotkey is rejected with the pallet error, not retried', async () => {
  const err = await chain.commit(stranger, 102, '{"s":"x"}').then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ChainRejectedError, String(err));
  assert.match(err.message, /commitments\.AccountNotAllowedCommit/);
});

test('an oversize payload is rejected before signing, naming its size and the limit', async () => {
  const payload = JSON.stringify({ u: 'x'.repeat(130) });
  const size = Buffer.byteLength(payload);
  assert.ok(size > 128, 'size > 128');
  await assert.rejects(
    chain.commit(miner, 102, payload),
    (err: Error) =>
      err instanceof ChainRejectedError && err.message.includes(`${size} bytes exceeds subtensor's limit of 128`),
  );
});

test(
  'the score is Incentive[uid] / sum(Incentive) as written by the devnet validator, with its report',
  { timeout: 30_000 },
  async () => {
    const s = await chain.schedule();
    let round = Math.floor(s.block / 54);
    if (s.block >= phaseWindow(s, round, 'MinerCommit1').start - 1) round += 1;
    const c1 = phaseWindow(s, round, 'MinerCommit1');
    await untilBlock(c1.start);
    await Promise.all([chain.commit(miner, 102, '{"s":"a"}'), chain.commit(rival, 102, '{"s":"b"}')]);
    const validate = phaseWindow(s, round, 'Validate');
    await untilBlock(validate.start + 2);
    let score = await chain.score(miner.address, 102);
    while (!score || score.updatedAtBlock < validate.start) {
      await new Promise((r) => setTimeout(r, 50));
      score = await chain.score(miner.address, 102);
    }
    assert.ok(
      validated.some((v) => v.round === round && v.hotkeys.length === 2),
      'validated.some((v) => v.round === round && v.hotkeys.length === 2)',
    );
    assert.equal(score.uid, 0);
    assert.ok(Math.abs(score.incentiveShare - 0.6) < 1e-4, `2.25 / (2.25 + 1.5) = 0.6, got ${score.incentiveShare}`);
    assert.equal(score.tempo, 54);
    assert.ok(Math.abs(score.emissionRao! - 0.6e9) < 1e5, 'Math.abs(score.emissionRao! - 0.6e9) < 1e5');
    assert.equal(score.details?.rank, 1);
    assert.equal(score.details?.round, round);
    const other = await chain.score(rival.address, 102);
    assert.ok(Math.abs(other!.incentiveShare - 0.4) < 1e-4, 'Math.abs(other!.incentiveShare - 0.4) < 1e-4');
    assert.equal(await chain.score(stranger.address, 102), null);
  },
);

test(
  'a dropped WebSocket reconnects: the devnet restarts on the same port and commits go through',
  { timeout: 30_000 },
  async () => {
    const port = devnet.port;
    await devnet.close();
    await new Promise((r) => setTimeout(r, 300)); // the client sees the socket close
    await assert.rejects(chain.uid(miner.address, 102), /not connected to the chain at .* \(still reconnecting/);
    devnet = await startDevnet(options(port));
    // Same configuration, same genesis: the client's signatures stay valid across the restart.
    let result: { block: number } | undefined;
    for (let i = 0; i < 100 && !result; i++) {
      result = await chain.commit(miner, 102, '{"s":"after restart"}').catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    assert.ok(result, 'a commit went through after the restart');
    assert.equal((await chain.commitment(miner.address, 102))?.payload, '{"s":"after restart"}');
  },
);

test('MINERFLOW_CHAIN picks the adapter: devnet by default, a ws(s):// endpoint with configured phases, anything else named', () => {
  const devnetSettings = loadSettings({ MINERFLOW_DATA_DIR: '/tmp/mf' });
  assert.equal(devnetSettings.chain.kind, 'devnet');
  assert.equal(devnetSettings.chain.url, 'ws://127.0.0.1:9944');
  const finney = loadSettings({ MINERFLOW_CHAIN: 'wss://entrypoint-finney.opentensor.ai:443' });
  assert.equal(finney.chain.kind, 'subtensor');
  assert.equal(finney.chain.url, 'wss://entrypoint-finney.opentensor.ai:443');
  assert.deepEqual(finney.chain.phases, CONNITO_PHASES);
  assert.equal(finney.chain.blockMs, 12_000);
  assert.match(finney.walletsDir, /\.bittensor\/wallets$/);
  const custom = loadSettings({
    MINERFLOW_CHAIN: 'ws://10.0.0.5:9944',
    MINERFLOW_PHASES: 'Train:100,MinerCommit1:5,MinerCommit2:5,Validate:5',
  });
  assert.equal(custom.chain.phases.length, 4);
  assert.throws(
    () => loadSettings({ MINERFLOW_CHAIN: 'https://entrypoint-finney.opentensor.ai' }),
    /MINERFLOW_CHAIN.*must be devnet or a ws:\/\/ or wss:\/\/ subtensor endpoint/s,
  );
});

test('the schedule carries the block time the chain really makes (from block timestamps), not the nominal one', async () => {
  // A devnet whose blocks come 150 ms apart although it was started for 100 ms blocks, as a busy host makes them.
  const slow = await startDevnet(options());
  slow.chain.stop();
  const t0 = Date.now();
  for (let i = 1; i <= 30; i++) slow.chain.produceBlock(t0 + i * 150);
  const c = await SubtensorChain.connect({ url: slow.url, phases: [], blockMs: 12_000 });
  try {
    const s = await c.schedule();
    assert.equal(s.blockMs, 150, 'observed over the last 20 blocks');
    assert.equal(s.atMs, t0 + 30 * 150, "the head's own timestamp");
  } finally {
    await c.close();
    await slow.close();
  }
});
