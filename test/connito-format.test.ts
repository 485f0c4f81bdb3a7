// Connito's wire formats, checked with the other side's own software: the commitments with
// Connito's pydantic models (re-declared with chain.py's field aliases) and bittensor-wallet; the
// expert shard with torch.load (Debian's python3-torch) and Connito's hash recipe from helper.py;
// and our reader with files torch.save wrote.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { weightShapes, type GptConfig } from '../model/gpt';
import type { StoredTensor } from '../model/safetensors';
import { ensureHotkey } from '../infra/wallet';
import {
  decodeLocationCommit,
  decodeSignatureCommit,
  decodeValidatorCommit,
  encodeLocationCommit,
  encodeSignatureCommit,
} from '../subnets/connito/commitments';
import {
  connitoName,
  mergeExpertShard,
  readExpertShard,
  writeExpertShard,
  type ExpertGroups,
} from '../subnets/connito/expert-shard';
import {
  fromFloat32,
  readStateDict,
  stateDictHash,
  writeStateDict,
  type PtTensor,
  type TorchDtype,
} from '../subnets/connito/torch-pt';
import { pythonScript } from './helpers/python';
import { tempDir } from './helpers/settings';

const HASH = '3f0c9a1be27d44c8a5f1e06b7d92c3a4e8b1f05d6c7a2e93';

test('Connito reads our commits: its pydantic models find every field, the signature verifies in bittensor-wallet, and its serialiser writes commit 2 byte for byte as we do', async () => {
  const pair = await ensureHotkey(tempDir(), 'miner', 'hk'); // the hotkey commit.ts signs with
  const commit1 = encodeSignatureCommit(Buffer.from(pair.sign(HASH)).toString('base64url'));
  const commit2 = encodeLocationCommit({ rv: 'abcdef0', r: 'miner-owner/connito-moe-3', v: 4660, h: HASH, e: 3 });
  assert.equal(commit2, `{"e":3,"h":"${HASH}","v":4660,"r":"miner-owner/connito-moe-3","rv":"abcdef0"}`);
  assert.match(commit1, /^\{"m":"[A-Za-z0-9_-]{86}"\}$/, 'a 64-byte signature, base64url without padding');

  const py = JSON.parse(
    pythonScript(
      'venv',
      'connito_commits.py',
      [],
      JSON.stringify({ hotkey: pair.address, hash: HASH, commit1, commit2 }),
    ),
  ) as {
    commit1: { signed_model_hash: string; verifies: boolean; verifies_other_hash: boolean };
    commit2: Record<string, unknown>;
    commit2_as_connito_writes_it: string;
    validator_commit2: string;
  };
  assert.equal(py.commit1.signed_model_hash, decodeSignatureCommit(commit1)!.m);
  assert.equal(py.commit1.verifies, true);
  assert.equal(py.commit1.verifies_other_hash, false, 'a signature of another hash does not verify');
  assert.deepEqual(py.commit2, {
    block: null,
    expert_group: 3,
    signed_model_hash: null,
    model_hash: HASH,
    global_ver: 4660,
    inner_opt: null,
    hf_repo_id: 'miner-owner/connito-moe-3',
    hf_revision: 'abcdef0',
  });
  assert.equal(py.commit2_as_connito_writes_it, commit2);
  assert.deepEqual(decodeLocationCommit(commit2), {
    e: 3,
    h: HASH,
    v: 4660,
    r: 'miner-owner/connito-moe-3',
    rv: 'abcdef0',
  });

  // A validator's commit 2 as Connito's own code writes it.
  assert.deepEqual(decodeValidatorCommit(py.validator_commit2), {
    h: HASH,
    v: 4660,
    e: 3,
    s: 11,
    r: 'connito-val/global-3',
    rv: 'abcdef0',
  });
  assert.equal(decodeValidatorCommit(commit1), undefined, 'a commit 1 is not a validator commit 2');
});

test('commit 2 omits absent fields, and decoding refuses what Connito could not use', () => {
  assert.equal(encodeLocationCommit({ h: HASH, v: 0 }), `{"h":"${HASH}","v":0}`);
  assert.deepEqual(decodeLocationCommit(`{"h":"${HASH}","v":0}`), { h: HASH, v: 0 });
  assert.equal(
    decodeLocationCommit(`{"h":"${HASH}","u":"file:///s","v":1}`)?.h,
    HASH,
    'unknown keys are ignored, as pydantic does',
  );
  assert.equal(decodeLocationCommit(`{"m":"abc"}`), undefined);
  assert.equal(decodeLocationCommit(`{"h":"${HASH}"}`), undefined, 'no global_ver');
  assert.equal(decodeLocationCommit(`{"h":"xyz","v":1}`), undefined);
  assert.equal(decodeLocationCommit('not json'), undefined);
  assert.deepEqual(decodeValidatorCommit(`{"h":"${HASH}","v":7,"e":0}`), { h: HASH, v: 7, e: 0 });
  assert.equal(decodeValidatorCommit(`{"h":"${HASH}","v":"7"}`), undefined);
});

test('bad commits fail before signing, naming the field or the byte budget', () => {
  const longRepo = 'an-owner-with-a-long-name/and-a-long-repo';
  assert.throws(
    () => encodeLocationCommit({ h: HASH, v: 1, r: longRepo, rv: 'abcdef0' }),
    (e: Error) => {
      assert.equal(e.name, 'CommitFormatError');
      assert.match(e.message, /field "r" \(Hugging Face repo id\) is 41 chars; the limit is 32/);
      return true;
    },
  );
  assert.throws(
    () => encodeLocationCommit({ h: HASH.slice(0, 40), v: 1 }),
    /field "h" \(model hash\) must be 48 lowercase hex chars/,
  );
  assert.throws(() => encodeLocationCommit({ h: HASH.toUpperCase(), v: 1 }), /field "h"/);
  assert.throws(
    () => encodeLocationCommit({ h: HASH, v: 1, r: 'o/n', rv: 'abcdef01' }),
    /field "rv" \(revision\) must be the first 7/,
  );
  assert.throws(() => encodeLocationCommit({ h: HASH, v: 1, r: 'o/n', rv: 'ABCDEF0' }), /field "rv"/);
  assert.throws(() => encodeLocationCommit({ h: HASH, v: 1, r: 'o/n' }), /fields "r" and "rv" go together/);
  assert.throws(() => encodeLocationCommit({ h: HASH, v: -1 }), /field "v" \(global_ver\)/);
  assert.throws(() => encodeLocationCommit({ h: HASH, v: 1, e: 1.5 }), /field "e" \(expert group\)/);
  // Every field within its own rule (a 4-digit group, a block number at 2^32 - 1, a 32-char repo), together over 128 bytes.
  const repo32 = 'abcdefghijklmnop/qrstuvwxyz01234';
  assert.equal(repo32.length, 32);
  assert.throws(
    () => encodeLocationCommit({ e: 1234, h: HASH, v: 4294967295, r: repo32, rv: 'abcdef0' }),
    (e: Error) => {
      assert.equal(e.name, 'CommitTooLargeError');
      assert.match(e.message, /commit payload is 134 bytes; the limit is 128/);
      return true;
    },
  );
  assert.throws(() => encodeSignatureCommit('abc=='), /base64url without padding/);
});

// ---------------------------------------------------------------------------------------------
// The expert shard

const MOE: GptConfig = {
  vocabSize: 16,
  seqLen: 4,
  dModel: 4,
  nLayer: 2,
  nHead: 1,
  moe: { experts: 4, topK: 1, capacityFactor: 1, auxLossWeight: 0, every: 1 },
};

/** Our model's weights with values that test rounding: ties, fp16 subnormals and fp16's largest value. */
function modelWeights(): Map<string, StoredTensor> {
  const edge = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3e-7, 6e-8, 2e-8, 65504, -65519, 0.1];
  const weights = new Map<string, StoredTensor>();
  let seed = 1;
  for (const [name, shape] of weightShapes(MOE)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      data[i] = i < edge.length ? edge[i] : (seed / 2 ** 31 - 0.5) * 3;
    }
    weights.set(name, { shape, data });
  }
  return weights;
}

interface TorchLoad {
  keys: string[];
  hash: string;
  tensors: Record<string, { dtype: string; shape: number[]; exact: boolean; same_without_weights_only: boolean }>;
  refused_by_expert_group_check: string[];
}

async function torchLoad(file: string, expected: Map<string, StoredTensor>, dtype: TorchDtype, assignment: object) {
  const expectedFile = `${file}.expected.json`;
  const tensors = Object.fromEntries(
    [...expected].map(([name, t]) => [connitoName(name), { dtype, shape: t.shape, values: [...t.data] }]),
  );
  await fs.writeFile(expectedFile, JSON.stringify({ tensors, assignment }));
  return JSON.parse(pythonScript('venv-torch', 'torch_shard.py', ['load', file, expectedFile])) as TorchLoad;
}

for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
  test(`a ${dtype} expert shard loads in torch with weights_only=True: our names, shapes, dtype, values rounded as torch rounds, and Connito's hash`, async () => {
    const weights = modelWeights();
    const groups: ExpertGroups = { count: 2 };
    const { file, hash, tensors } = await writeExpertShard(tempDir(), weights, { group: 1, groups, dtype });
    assert.equal(path.basename(file), 'model_expgroup_1.pt');
    const inGroup = new Map([...weights].filter(([n]) => /^h\.\d\.moe\.experts\.[13]\./.test(n)));
    assert.equal(tensors, 16, '2 layers × experts 1 and 3 × 4 tensors');
    assert.equal(inGroup.size, 16);

    // Connito's rule for the same experts, as its expert_assignment.json would write it.
    const assignment = {
      '0': [
        [1, 1],
        [3, 3],
      ],
      '1': [
        [1, 1],
        [3, 3],
      ],
    };
    const py = await torchLoad(file, inGroup, dtype, assignment);
    assert.deepEqual(py.keys, ['model_state_dict']);
    assert.deepEqual(Object.keys(py.tensors).sort(), [...inGroup.keys()].map((n) => connitoName(n)!).sort());
    for (const [name, t] of inGroup) {
      const got = py.tensors[connitoName(name)!];
      assert.deepEqual(got, { dtype, shape: t.shape, exact: true, same_without_weights_only: true }, name);
    }
    assert.deepEqual(py.refused_by_expert_group_check, []);
    assert.equal(py.hash, hash, "torch's view of the file hashes, by Connito's recipe, to what we commit");

    // Read back by us: the same hash, and merged into the model only the group's experts change.
    const shard = await readExpertShard(file);
    assert.equal(shard.hash, hash);
    const changed = new Map([...weights].map(([n, t]) => [n, { shape: t.shape, data: t.data.map((x) => x + 1) }]));
    const merged = mergeExpertShard(changed, shard.tensors);
    for (const [name, t] of merged) {
      if (!inGroup.has(name)) assert.equal(t, changed.get(name), `${name} is not the group's and stays`);
      else if (dtype === 'float32') assert.deepEqual(t.data, weights.get(name)!.data, name);
      else
        assert.ok(
          t.data.every((x, i) => Math.abs(x - weights.get(name)!.data[i]) <= Math.abs(x) * 2 ** -7 + 1e-7),
          name,
        );
    }
  });
}

test("Connito's assignment table picks the group's experts (either id of a pair), and its own check accepts the shard", async () => {
  const assignment = { '0': [[0, 2]], '1': [[1, 3]] } as Record<string, [number, number][]>;
  const { file } = await writeExpertShard(tempDir(), modelWeights(), {
    group: 5,
    groups: { assignment },
    dtype: 'bfloat16',
  });
  const { tensors } = await readExpertShard(file);
  const experts = [...new Set([...tensors.keys()].map((n) => n.split('.').slice(0, 5).join('.')))].sort();
  assert.deepEqual(experts, [
    'layers.0.mlp.experts.0',
    'layers.0.mlp.experts.2',
    'layers.1.mlp.experts.1',
    'layers.1.mlp.experts.3',
  ]);
  const py = await torchLoad(file, new Map(), 'bfloat16', assignment);
  assert.equal(Object.keys(py.tensors).length, 16);
  assert.deepEqual(py.refused_by_expert_group_check, []);
});

test("a file torch.save wrote (OrderedDict state dict, mixed dtypes with bf16, a 0-dim tensor, views into one storage) reads with identical bits and Connito's hash", async () => {
  const file = path.join(tempDir(), 'from-torch.pt');
  const py = JSON.parse(pythonScript('venv-torch', 'torch_shard.py', ['save', file])) as {
    hash: string;
    tensors: Record<string, { dtype: TorchDtype; shape: number[]; bits: number[] }>;
  };
  const ours = await readStateDict(file);
  assert.deepEqual([...ours.keys()], Object.keys(py.tensors), 'in the order torch wrote them');
  for (const [name, want] of Object.entries(py.tensors)) {
    const t = ours.get(name)!;
    assert.equal(t.dtype, want.dtype, name);
    assert.deepEqual(t.shape, want.shape, name);
    const bits =
      t.dtype === 'float32'
        ? new Int32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4)
        : new Int16Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 2);
    assert.deepEqual([...bits], want.bits, name);
  }
  assert.equal(await stateDictHash(ours), py.hash);
  assert.equal((await readExpertShard(file)).hash, py.hash);
});

test('bad shards fail with errors naming the problem', async () => {
  const dir = tempDir();
  const one = (dtype: TorchDtype): PtTensor => fromFloat32('x', Float32Array.from([1, 2]), [2], dtype);

  // A non-expert tensor in a shard.
  const withGate = path.join(dir, 'gate.pt');
  await writeStateDict(withGate, new Map([['layers.0.mlp.gate.weight', one('float32')]]));
  await assert.rejects(readExpertShard(withGate), /tensor 'layers\.0\.mlp\.gate\.weight' is not an expert tensor/);
  await assert.rejects(
    (async () => mergeExpertShard(modelWeights(), await readStateDict(withGate)))(),
    /not an expert tensor/,
  );
  // An expert this model does not have, or of another shape.
  assert.throws(
    () => mergeExpertShard(modelWeights(), new Map([['layers.0.mlp.experts.9.c_fc.bias', one('float32')]])),
    /shard tensor 'layers\.0\.mlp\.experts\.9\.c_fc\.bias' has no counterpart 'h\.0\.moe\.experts\.9\.c_fc\.bias'/,
  );
  assert.throws(
    () => mergeExpertShard(modelWeights(), new Map([['layers.0.mlp.experts.1.c_fc.bias', one('float32')]])),
    /has shape \[2\]; the model's 'h\.0\.moe\.experts\.1\.c_fc\.bias' is \[16\]/,
  );

  // Unsupported dtypes, ours and torch's.
  assert.throws(
    () => fromFloat32('w', Float32Array.from([1]), [1], 'float64' as TorchDtype),
    /tensor 'w': dtype 'float64' is not supported/,
  );
  await assert.rejects(
    writeStateDict(path.join(dir, 'int8.pt'), new Map([['w', { ...one('float32'), dtype: 'int8' as TorchDtype }]])),
    /tensor 'w': dtype 'int8' is not supported/,
  );
  const f64 = path.join(dir, 'f64.pt');
  pythonScript('venv-torch', 'torch_shard.py', ['save-float64', f64]);
  await assert.rejects(readStateDict(f64), /storage type torch\.DoubleStorage is not supported/);

  // Values a 16-bit dtype cannot hold.
  assert.throws(
    () => fromFloat32('h.0.moe.experts.0.c_fc.weight', Float32Array.from([1, 70000]), [2], 'float16'),
    /tensor 'h\.0\.moe\.experts\.0\.c_fc\.weight': value 70000 at index 1 is not finite as float16/,
  );
  assert.throws(
    () => fromFloat32('w', Float32Array.from([NaN]), [1], 'bfloat16'),
    /value NaN at index 0 is not finite/,
  );

  // A group without experts, and a group outside the count.
  const dense = new Map([['h.0.mlp.c_fc.weight', { shape: [2], data: Float32Array.from([1, 2]) }]]);
  await assert.rejects(
    writeExpertShard(dir, dense, { group: 0, groups: { count: 2 }, dtype: 'float16' }),
    /expert group 0 has no expert tensors in this model/,
  );
  await assert.rejects(
    writeExpertShard(dir, modelWeights(), { group: 2, groups: { count: 2 }, dtype: 'float16' }),
    /expert group 2 is not one of the 2 groups \(0 to 1\)/,
  );

  // Truncated files (a download cut short loses the zip's directory at the end), and not a zip at all.
  const { file } = await writeExpertShard(dir, modelWeights(), { group: 0, groups: { count: 2 }, dtype: 'float32' });
  const bytes = await fs.readFile(file);
  const cut = path.join(dir, 'cut.pt');
  await fs.writeFile(cut, bytes.subarray(0, bytes.length - 10));
  await assert.rejects(readStateDict(cut), /cut\.pt: no zip end-of-central-directory record \(truncated/);
  await fs.writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await assert.rejects(readStateDict(cut), /truncated/);
  await fs.writeFile(cut, 'not a zip at all');
  await assert.rejects(readStateDict(cut), /no zip end-of-central-directory record/);
});
