// Connito's transport end to end: a cycle publishes its expert group's shard to the miner's Hugging
// Face repo (a local hub speaking the Hub's API), commits {"e","h","v","r","rv"}, and is scored by
// the devnet's validator, which fetched the shard through the hub and checked its hash. Then the
// validators' own clients: huggingface_hub downloads the committed revision, torch loads it, and
// Connito's hash of it is the committed one.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { startLocalHub } from '../infra/hub/local-hub';
import { openChain } from '../infra/runtime';
import { loadHotkey } from '../infra/wallet';
import { decodeLocationCommit } from '../subnets/connito/commitments';
import { torchMinerTrainer } from '../trainers/command';
import { pythonScriptAsync } from './helpers/python';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { runCycle, useTemporal } from './helpers/temporal';

const TOKEN = 'hf_minerflow_test_token';
const PYTHON = path.join(__dirname, '..', '.tools', 'venv-torch', 'bin', 'python');
const settings = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
let hub: { url: string; close(): Promise<void> };
let hubDir: string;
let first: { input: object; hash: string; round: number } | undefined;

/** Both commitments read through the Bittensor SDK and Connito's models (test/python/connito_sdk_read.py), the shard downloaded into `local`. */
async function readWithConnitoSdk(commits: { block: number }[], hotkey: string, local: string) {
  const [c1Block, c2Block] = commits.map((c) => String(c.block));
  return JSON.parse(
    await pythonScriptAsync('connito_sdk_read.py', [settings.chain.url, '102', hotkey, c1Block, c2Block, local]),
  ) as {
    commit1: { signed_model_hash: string | null };
    commit2: Record<string, unknown>;
    verifies: boolean;
    file: string;
  };
}

before(async () => {
  hubDir = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-hub-'));
  hub = await startLocalHub({ dir: hubDir, token: TOKEN });
  settings.hub = { endpoint: hub.url, token: TOKEN };
});
after(async () => {
  await hub?.close();
  await fs.rm(hubDir, { recursive: true, force: true });
});
useTemporal(settings, (t) => ({ env, bundle } = t));

test(
  "a cycle publishes its expert shard to the hub and is scored through it; Connito's clients read what it committed",
  { timeout: 300_000 },
  async () => {
    const input = {
      ...SMALL_CYCLE,
      model: { ...SMALL_CYCLE.model, moe: { experts: 4, topK: 2, every: 1 } },
      corpus: { path: 'sample:brown:ar' },
      curate: { heldOutFraction: 0.1 },
      publish: { repo: 'miner/sn102-hub-test', expertGroup: 1, expertGroups: 2, dtype: 'bfloat16' },
    };
    const result = await runCycle(env, bundle, settings, `hub-cycle-${Date.now()}`, input);
    assert.equal(result.score.status, 'scored', JSON.stringify(result.score));
    first = { input, hash: result.checkpoint.hash, round: result.checkpoint.round };
    const published = result.checkpoint.hub!;
    assert.equal(published.repo, 'miner/sn102-hub-test');
    assert.equal(published.file, 'model_expgroup_1.pt');

    // Commit 2 as Connito's miners write it.
    const hotkey = await loadHotkey(settings.walletsDir, 'default', 'default');
    const chain = await openChain(settings);
    const c2 = decodeLocationCommit((await chain.commitment(hotkey.address, 102))!.payload);
    assert.deepEqual(c2, {
      e: 1,
      h: result.checkpoint.hash,
      v: 0,
      r: published.repo,
      rv: published.commitSha.slice(0, 7),
    });

    // What a Connito validator does with it: both commitments through the Bittensor SDK, parsed by
    // Connito's models, the signature checked, hf_hub_download at rv, torch.load, get_model_hash.
    const local = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-fetched-'));
    process.env.HF_ENDPOINT = hub.url;
    try {
      const seen = await readWithConnitoSdk(result.commits, hotkey.address, local);
      assert.ok(seen.commit1.signed_model_hash, 'commit 1 has its signature');
      assert.deepEqual(
        ['expert_group', 'model_hash', 'global_ver', 'hf_repo_id', 'hf_revision'].map((k) => seen.commit2[k]),
        [1, result.checkpoint.hash, 0, published.repo, published.commitSha.slice(0, 7)],
        'every field of commit 2, as Connito names them',
      );
      assert.equal(seen.verifies, true, 'Keypair(ss58_address=hotkey).verify(hash, signature)');
      const expected = path.join(local, 'expected.json');
      await fs.writeFile(expected, JSON.stringify({ tensors: {} }));
      const loaded = JSON.parse(
        await pythonScriptAsync('torch_shard.py', ['load', seen.file, expected], 'venv-torch'),
      ) as { hash: string; tensors: Record<string, { dtype: string }> };
      assert.equal(loaded.hash, c2!.h, "Connito's hash of the downloaded shard is the committed hash");
      const names = Object.keys(loaded.tensors);
      assert.ok(names.length > 0 && names.every((n) => /^layers\.0\.mlp\.experts\.[13]\./.test(n)), names.join());
      assert.ok(
        Object.values(loaded.tensors).every((t) => t.dtype === 'bfloat16'),
        "Object.values(loaded.tensors).every((t) => t.dtype === 'bfloat16')",
      );
    } finally {
      delete process.env.HF_ENDPOINT;
      await fs.rm(local, { recursive: true, force: true });
    }
  },
);

test(
  'the next cycle starts from the global model the validator published after the first (Distribute), and commits its version',
  { timeout: 300_000 },
  async () => {
    assert.ok(first, 'the first cycle ran');
    const result = await runCycle(env, bundle, settings, `hub-cycle-2-${Date.now()}`, first.input);
    const d = result.distribute;
    assert.equal(d?.status, 'warm', JSON.stringify(d));
    if (d?.status !== 'warm') return;
    // The devnet validator's global model is the first cycle's winning shard, in its own repo.
    assert.equal(d.hash, first.hash);
    assert.equal(d.repo, 'devnet-validator/global');
    assert.ok(result.checkpoint.round > first.round, 'result.checkpoint.round > first.round');
    const chain = await openChain(settings);
    const hotkey = await loadHotkey(settings.walletsDir, 'default', 'default');
    const c2 = decodeLocationCommit((await chain.commitment(hotkey.address, 102))!.payload);
    assert.equal(c2?.v, d.globalVer, "commit 2's v is the global model's version");
    assert.ok(d.globalVer > 0, 'd.globalVer > 0');
    assert.equal(result.score.status, 'scored', JSON.stringify(result.score));
  },
);

test(
  "the command trainer's checkpoint in Connito's layout (the PyTorch miner standing in for train.py) goes through the same hub publish: its expert shard is uploaded and Connito's hash of it is committed",
  { timeout: 300_000 },
  async () => {
    const input = {
      ...SMALL_CYCLE,
      trainer: {
        ...torchMinerTrainer({ python: PYTHON, checkpointInterval: 10 }),
        stop: { sigintGraceSeconds: 2, sigtermGraceSeconds: 1 },
      },
      model: { ...SMALL_CYCLE.model, nLayer: 2, moe: { experts: 4, topK: 2, every: 1 } },
      corpus: { path: 'sample:brown:ar' },
      curate: { heldOutFraction: 0.1 },
      // Each evaluation and the export start Python: seconds on a loaded host.
      commit: { minTrainSeconds: 4, reserveSeconds: 10 },
      publish: { repo: 'miner/sn102-hub-command', expertGroup: 0, expertGroups: 2, dtype: 'bfloat16' },
    };
    const result = await runCycle(env, bundle, settings, `hub-command-${Date.now()}`, input);
    assert.equal(result.score.status, 'scored', JSON.stringify(result.score));
    assert.ok(
      result.segments.length > 0 && result.segments.every((s) => s.backend === 'command'),
      "result.segments.length > 0 && result.segments.every((s) => s.backend === 'command')",
    );
    assert.match(
      result.training.best.key,
      /\/globalver_0_inneropt_\d+$/,
      'the published state is a train.py-layout checkpoint',
    );
    const published = result.checkpoint.hub!;
    assert.equal(published.repo, 'miner/sn102-hub-command');
    assert.equal(published.file, 'model_expgroup_0.pt');
    const hotkey = await loadHotkey(settings.walletsDir, 'default', 'default');

    // Connito's side: both commitments through the Bittensor SDK, hf_hub_download at rv, torch.load,
    // get_model_hash: the committed hash is Connito's hash of the uploaded shard, which holds expert
    // group 0's experts only.
    const local = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-fetched-command-'));
    process.env.HF_ENDPOINT = hub.url;
    try {
      const seen = await readWithConnitoSdk(result.commits, hotkey.address, local);
      assert.deepEqual(
        ['expert_group', 'model_hash', 'hf_repo_id', 'hf_revision'].map((k) => seen.commit2[k]),
        [0, result.checkpoint.hash, published.repo, published.commitSha.slice(0, 7)],
      );
      assert.equal(seen.verifies, true);
      const expected = path.join(local, 'expected.json');
      await fs.writeFile(expected, JSON.stringify({ tensors: {} }));
      const loaded = JSON.parse(
        await pythonScriptAsync('torch_shard.py', ['load', seen.file, expected], 'venv-torch'),
      ) as {
        hash: string;
        tensors: Record<string, { dtype: string }>;
      };
      assert.equal(loaded.hash, result.checkpoint.hash, "Connito's hash of the downloaded shard is the committed hash");
      const names = Object.keys(loaded.tensors);
      assert.ok(names.length > 0 && names.every((n) => /^layers\.[01]\.mlp\.experts\.[02]\./.test(n)), names.join());
    } finally {
      delete process.env.HF_ENDPOINT;
      await fs.rm(local, { recursive: true, force: true });
    }
  },
);
