// The Gradients service over real HTTP on loopback with real sr25519 keys: fiber's refusals with
// fiber's statuses, offers answered by the acceptance policy, training started only for accepted
// offers (also after a restart), bad bodies named, and requests signed by Python's
// substrate-interface (what fiber uses) and bittensor-wallet accepted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { createLogger } from '../infra/log';
import { projectRoot } from '../infra/paths';
import { PoolSchema } from '../subnets/gradients/config';
import { signRequest, signingMessage } from '../subnets/gradients/fiber';
import { FileJobRecord } from '../subnets/gradients/job-record';
import type { JobStarter, PoolLoad, PoolView } from '../subnets/gradients/ports';
import type { MinerSubmission, MinerTaskOffer } from '../subnets/gradients/protocol';
import { OfferBook, startGradientsService, type RunningService, type ServiceDeps } from '../subnets/gradients/service';
import { ValidatorClient } from '../subnets/gradients/validator-client';
import { tempDir } from './helpers/settings';

const GB = 1024 ** 3;
const VALIDATOR_SEED = '0x' + '11'.repeat(32);

/** The service's inputs, in memory: the real ones (Temporal-backed) come from the job workflow's side. */
class MemoryJobs implements JobStarter, PoolView {
  started: Parameters<JobStarter['start']>[0][] = [];
  submissions = new Map<string, MinerSubmission | null>();
  load: PoolLoad[] = [];
  start(job: Parameters<JobStarter['start']>[0]): Promise<void> {
    if (!this.started.some((j) => j.request.task_id === job.request.task_id)) this.started.push(job);
    this.submissions.set(job.request.task_id, this.submissions.get(job.request.task_id) ?? null);
    return Promise.resolve();
  }
  finished = new Set<string>();
  running(taskId: string): Promise<boolean> {
    return Promise.resolve(this.submissions.has(taskId) && !this.finished.has(taskId));
  }
  submission(taskId: string): Promise<MinerSubmission | null | undefined> {
    return Promise.resolve(this.submissions.get(taskId));
  }
  loads(): Promise<PoolLoad[]> {
    return Promise.resolve(this.load);
  }
}

let keyring: Keyring;
let validator: KeyringPair, poor: KeyringPair, stranger: KeyringPair, miner: KeyringPair;
let dir: string;
let jobs: MemoryJobs;
let service: RunningService;
let client: ValidatorClient;
let stakes: Map<string, number>;

const quiet = createLogger({ level: 'silent' });
const pools = [PoolSchema.parse({ name: 'cpu', memoryBytes: 8 * GB, tokensPerSecPerBillion: 2_000 })];

async function startService(training = jobs, offersFile = path.join(dir, 'offers.json')): Promise<RunningService> {
  const deps: ServiceDeps = {
    minerHotkey: miner.address,
    stakeOf: (h) => stakes.get(h),
    pools,
    poolView: training,
    jobs: training,
    record: new FileJobRecord(path.join(dir, 'jobs.jsonl')),
    offers: await new OfferBook(offersFile).load(),
    log: quiet,
  };
  return startGradientsService(deps);
}

const offer = (o: Partial<MinerTaskOffer> = {}): MinerTaskOffer => ({
  model: 'unsloth/Llama-3.2-1B',
  hours_to_complete: 4,
  task_id: `task-${Math.random().toString(36).slice(2, 10)}`,
  task_type: 'InstructTextTask',
  ds_size: 1000,
  model_params_count: null,
  ...o,
});

const trainRequest = (taskId: string, o: Record<string, unknown> = {}) => ({
  model: 'unsloth/Llama-3.2-1B',
  task_id: taskId,
  hours_to_complete: 4,
  expected_repo_name: `miner/${taskId}`,
  dataset: 'https://example.org/data.json',
  dataset_type: { field_instruction: 'instruction', field_output: 'output' },
  file_format: 's3',
  ...o,
});

/** One POST with the given headers and exact body bytes. */
async function post(endpoint: string, headers: Record<string, string>, body: string) {
  const res = await fetch(service.url + endpoint, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body,
  });
  return { status: res.status, body: (await res.json()) as { detail?: string; accepted?: boolean; message?: string } };
}

before(async () => {
  await cryptoWaitReady();
  keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  validator = keyring.addFromSeed(Buffer.from(VALIDATOR_SEED.slice(2), 'hex'));
  poor = keyring.addFromUri('//gradients-poor-validator');
  stranger = keyring.addFromUri('//gradients-stranger');
  miner = keyring.addFromUri('//gradients-miner');
  stakes = new Map([
    [validator.address, 5_000],
    [poor.address, 999],
  ]);
  dir = tempDir();
  jobs = new MemoryJobs();
  service = await startService();
  client = new ValidatorClient(validator, service.url, miner.address);
});

after(async () => {
  await service?.close();
});

test('an offer signed by a staked validator is answered by the policy; an accepted one trains and submits', async () => {
  const o = offer();
  const answer = await client.offer(o);
  assert.equal(answer.accepted, true, answer.message);
  assert.match(answer.message, /^cpu \(lora\): ~\d+ s of work, done by .*, deadline/);

  assert.equal(await client.submission(o.task_id), null, 'no submission before training');
  const started = await client.startTraining('InstructTextTask', trainRequest(o.task_id));
  assert.deepEqual(started, { message: 'Training job enqueued.', task_id: o.task_id });
  const job = jobs.started.find((j) => j.request.task_id === o.task_id);
  assert.ok(job, 'JobStarter.start was called');
  assert.equal(job.taskType, 'InstructTextTask');
  assert.equal(job.decision.pool, 'cpu');
  assert.equal(job.decision.method, 'lora');
  assert.deepEqual(job.offer, o);

  jobs.submissions.set(o.task_id, { repo: `miner/${o.task_id}`, model_hash: 'abc' });
  assert.deepEqual(await client.submission(o.task_id), { repo: `miner/${o.task_id}`, model_hash: 'abc' });

  const declined = await client.offer(offer({ model: 'tiiuae/falcon-7b' }));
  assert.deepEqual(declined.accepted, false);
  assert.match(declined.message, /model family 'falcon'/);
  const grpo = await client.offer(offer({ task_type: 'GrpoTask' }));
  assert.match(grpo.message, /GrpoTask needs a pool whose trainer is 'command'/);
  const image = await client.offer(offer({ task_type: 'ImageTask' }));
  assert.equal(image.accepted, false);
});

test("fiber's refusals: bad signature, replayed, stale and malformed nonces, wrong miner, unknown and poor validators", async () => {
  const body = JSON.stringify(offer());
  const signed = signRequest(validator, miner.address, body);

  const cases: [string, Record<string, string>, string, number, RegExp][] = [
    [
      'body changed after signing',
      signed,
      body.replace('"hours_to_complete":4', '"hours_to_complete":40'),
      401,
      /invalid signature/,
    ],
    [
      'signed by another key',
      { ...signRequest(stranger, miner.address, body), 'validator-hotkey': validator.address },
      body,
      401,
      /invalid signature/,
    ],
    ['signature not hex', { ...signed, signature: 'nope' }, body, 401, /invalid signature/],
    [
      'stale nonce',
      signRequest(validator, miner.address, body, Date.now() - 121_000),
      body,
      401,
      /nonce is not valid: stale/,
    ],
    [
      'nonce from the future',
      signRequest(validator, miner.address, body, Date.now() + 121_000),
      body,
      401,
      /nonce is not valid: future/,
    ],
    ['nonce without a time', { ...signed, nonce: 'abc_123' }, body, 401, /nonce is not valid: malformed/],
    [
      'for another miner',
      signRequest(validator, stranger.address, body),
      body,
      401,
      /miner-hotkey .* is not this miner/,
    ],
    [
      'validator not in the metagraph',
      signRequest(stranger, miner.address, body),
      body,
      403,
      /Hotkey not found in metagraph/,
    ],
    ['stake below 1000', signRequest(poor, miner.address, body), body, 403, /Insufficient stake of 999/],
    ['no signature header', { ...signed, signature: '' }, body, 422, /missing header 'signature'/],
  ];
  for (const [what, headers, sent, status, detail] of cases) {
    const r = await post('/task_offer/', headers, sent);
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.detail ?? '', detail, what);
  }

  // The same signed request twice: the first is answered, the replay refused.
  const once = signRequest(validator, miner.address, body);
  assert.equal((await post('/task_offer/', once, body)).status, 200);
  const replay = await post('/task_offer/', once, body);
  assert.equal(replay.status, 401);
  assert.match(replay.body.detail!, /nonce is not valid: replayed/);
  // A forged request does not use up a real nonce: the valid one with the same nonce still passes.
  const fresh = signRequest(validator, miner.address, body);
  assert.equal((await post('/task_offer/', fresh, body + ' ')).status, 401);
  assert.equal((await post('/task_offer/', fresh, body)).status, 200);

  // A GET is signed without a body hash; one signed with a hash is refused.
  const taskId = 'no-such-task';
  const getUrl = `${service.url}/get_latest_model_submission/${taskId}`;
  const asGet = await fetch(getUrl, { headers: signRequest(validator, miner.address) });
  assert.equal(asGet.status, 404);
  assert.match(((await asGet.json()) as { detail: string }).detail, /No model submission found for task no-such-task/);
  const withHash = await fetch(getUrl, { headers: signRequest(validator, miner.address, '') });
  assert.equal(withHash.status, 401);
});

test('bad bodies are refused with 4xx naming the field, never a crash', async () => {
  const send = (endpoint: string, body: string) => post(endpoint, signRequest(validator, miner.address, body), body);
  const accepted = offer();
  assert.equal((await client.offer(accepted)).accepted, true);
  const cases: [string, string, number, RegExp][] = [
    ['/task_offer/', '{"model": "x"', 400, /body is not JSON/],
    ['/task_offer/', JSON.stringify({ ...offer(), task_type: undefined }), 422, /task_type = missing/],
    ['/task_offer/', JSON.stringify({ ...offer(), hours_to_complete: 'soon' }), 422, /hours_to_complete = "soon"/],
    ['/task_offer/', JSON.stringify({ ...offer(), task_type: 'VideoTask' }), 422, /task_type = "VideoTask"/],
    ['/task_offer/', '[]', 422, /invalid task offer/],
    ['/start_training/', JSON.stringify({ model: 'm' }), 422, /task_id = missing/],
    [
      '/start_training/',
      JSON.stringify(trainRequest(accepted.task_id, { file_format: 'xlsx' })),
      422,
      /file_format = "xlsx"/,
    ],
    [
      '/start_training/',
      JSON.stringify(trainRequest(accepted.task_id, { dataset_type: { field_output: 7 } })),
      422,
      /dataset_type of a InstructTextTask: field_output = 7/,
    ],
    [
      '/start_training/',
      JSON.stringify(trainRequest('never-offered')),
      409,
      /task never-offered was not offered to or accepted/,
    ],
    [
      '/start_training_grpo/',
      JSON.stringify(trainRequest(accepted.task_id)),
      409,
      /InstructTextTask: \/start_training_grpo\/ does not start it/,
    ],
    ['/task_offer/', JSON.stringify({ ...offer(), model: 'x'.repeat(2 << 20) }), 413, /over the 1048576-byte limit/],
  ];
  for (const [endpoint, body, status, detail] of cases) {
    const r = await send(endpoint, body);
    assert.equal(r.status, status, `${endpoint} ${body.slice(0, 80)}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.detail ?? '', detail);
  }
  const declined = offer({ model: 'tiiuae/falcon-7b' });
  assert.equal((await client.offer(declined)).accepted, false);
  const r = await send('/start_training/', JSON.stringify(trainRequest(declined.task_id)));
  assert.equal(r.status, 409, 'a declined offer does not train');
  assert.ok(
    !jobs.started.some((j) => j.request.task_id === declined.task_id),
    '!jobs.started.some((j) => j.request.task_id === declined.task_id)',
  );
  const wrong = await fetch(`${service.url}/task_offer/`, { headers: signRequest(validator, miner.address) });
  assert.equal(wrong.status, 405);
  assert.equal((await fetch(`${service.url}/nope`)).status, 404);
});

test('after a restart, an offer accepted before it still trains, and requests seen before it are not replayable', async () => {
  const o = offer();
  assert.equal((await client.offer(o)).accepted, true);
  const body = JSON.stringify(offer());
  const seen = signRequest(validator, miner.address, body);
  assert.equal((await post('/task_offer/', seen, body)).status, 200);

  await service.close();
  service = await startService();
  client = new ValidatorClient(validator, service.url, miner.address);

  const replay = await post('/task_offer/', seen, body);
  assert.equal(replay.status, 401);
  assert.match(replay.body.detail!, /before-start/);
  assert.deepEqual(await client.startTraining('InstructTextTask', trainRequest(o.task_id)), {
    message: 'Training job enqueued.',
    task_id: o.task_id,
  });
});

test('the pools hold accepted offers not yet started: a second offer that would overbook is declined', async () => {
  // Each: 60 000 rows × 256 tokens at 2000 × 1.5 (LoRA) tok/s + 300 s ≈ 1.5 h; by a 3 h deadline less
  // its reserve (2.53 h) there is room for one after the small offers accepted above.
  jobs.load = [];
  const slow = { ds_size: 60_000, hours_to_complete: 3 };
  const first = await client.offer(offer(slow));
  const second = await client.offer(offer(slow));
  assert.equal(first.accepted, true, first.message);
  assert.equal(second.accepted, false, second.message);
  assert.match(second.message, /would push accepted job task-\w+ past its deadline|would finish/);
});

// substrate-interface lives in its own venv (scripts/setup-python.sh: its scalecodec clashes with bittensor's).
const venvPython = (venv: string) => path.join(projectRoot(), '.tools', venv, 'bin', 'python');
const pythonFor = (lib: string) =>
  lib === 'substrateinterface'
    ? (process.env.MINERFLOW_TEST_SUBSTRATE_PYTHON ?? venvPython('venv-fiber'))
    : venvPython('venv');

async function pyPeer(args: string[]): Promise<{ address?: string; status?: number; body?: string; valid?: boolean }> {
  const script = path.join(projectRoot(), 'test', 'python', 'fiber_peer.py');
  const python = pythonFor(args[1]);
  if (!existsSync(python))
    throw new Error(`${python} is missing: run \`bash scripts/setup-python.sh\` (\`npm test\` runs it)`);
  const { stdout } = await promisify(execFile)(python, [script, ...args], { encoding: 'utf8' });
  return JSON.parse(stdout) as { address?: string; status?: number; body?: string; valid?: boolean };
}

for (const lib of ['substrateinterface', 'bittensor_wallet']) {
  test(`requests signed by Python ${lib}'s Keypair the fiber way are accepted, and it verifies ours`, async () => {
    const o = offer();
    const r = await pyPeer([
      'request',
      lib,
      VALIDATOR_SEED,
      service.url,
      miner.address,
      'POST',
      '/task_offer/',
      JSON.stringify(o),
    ]);
    assert.equal(r.address, validator.address, 'the same seed gives the same hotkey');
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body!) as { accepted: boolean }).accepted, true);
    jobs.submissions.set(o.task_id, { repo: 'miner/x', model_hash: null });
    const g = await pyPeer([
      'request',
      lib,
      VALIDATOR_SEED,
      service.url,
      miner.address,
      'GET',
      `/get_latest_model_submission/${o.task_id}`,
    ]);
    assert.equal(g.status, 200, g.body);
    assert.deepEqual(JSON.parse(g.body!), { repo: 'miner/x', model_hash: null });

    const headers = signRequest(validator, miner.address, '{"a":1}');
    const message = signingMessage(headers.nonce, miner.address, '{"a":1}');
    assert.deepEqual(await pyPeer(['verify', lib, validator.address, message, headers.signature]), { valid: true });
    assert.deepEqual(await pyPeer(['verify', lib, validator.address, message + 'x', headers.signature]), {
      valid: false,
    });
  });
}

test('a started job still preparing its data (not yet on its pool) holds its place until it has finished', async () => {
  // A service of its own: an empty pool and offer book. Each offer is ~1.5 h of work; by 3 h less the
  // reserve there is room for one.
  const own = new MemoryJobs();
  const svc = await startService(own, path.join(dir, 'offers-preparing.json'));
  try {
    const v = new ValidatorClient(validator, svc.url, miner.address);
    const slow = { ds_size: 60_000, hours_to_complete: 3 };
    const first = offer(slow);
    const firstAnswer = await v.offer(first);
    assert.equal(firstAnswer.accepted, true, firstAnswer.message);
    assert.equal((await v.startTraining('InstructTextTask', trainRequest(first.task_id)))?.task_id, first.task_id);
    // Started, preparing its data: its pool does not list it yet, and it still counts.
    const second = await v.offer(offer(slow));
    assert.equal(second.accepted, false, `overbooked while the first job prepares: ${second.message}`);
    // Finished: its place is free again.
    own.finished.add(first.task_id);
    const third = await v.offer(offer(slow));
    assert.equal(third.accepted, true, third.message);
  } finally {
    await svc.close();
  }
});
