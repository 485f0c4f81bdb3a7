import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { hashSafetensorsFile } from '../model/hash';
import { readSafetensors, writeSafetensors, type StoredTensor } from '../model/safetensors';
import { python } from './helpers/python';
import { tempDir } from './helpers/settings';

function sample(): Map<string, StoredTensor> {
  const t = new Map<string, StoredTensor>();
  // inserted out of order on purpose: the file and the hash must sort by name
  t.set('h.0.mlp.c_fc.weight', { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2) });
  t.set('wte', { shape: [5, 2], data: Float32Array.from({ length: 10 }, (_, i) => Math.sin(i)) });
  t.set('ln_f.bias', { shape: [2], data: Float32Array.from([0.25, -1e-3]) });
  return t;
}

test('safetensors round-trips and the write-time hash equals the streamed hash', async () => {
  const file = path.join(tempDir(), 'model.safetensors');
  const hash = await writeSafetensors(file, sample(), { format: 'pt' });
  assert.match(hash, /^[0-9a-f]{48}$/);
  assert.equal(await hashSafetensorsFile(file), hash);
  assert.equal(await hashSafetensorsFile(file, 7), hash, 'chunk boundaries must not change the hash');
  const back = await readSafetensors(file);
  assert.deepEqual([...back.tensors.keys()].sort(), [...sample().keys()].sort());
  assert.deepEqual(back.tensors.get('wte')!.data, sample().get('wte')!.data);
  assert.equal(back.metadata.format, 'pt');
});

test('Python safetensors loads our file, and hashlib blake2b(digest_size=24) gives our model hash', async () => {
  const file = path.join(tempDir(), 'model.safetensors');
  const hash = await writeSafetensors(file, sample());
  const out = python(
    `
import sys, json, hashlib
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
h = hashlib.blake2b(digest_size=24)
trunc = hashlib.blake2b()
for name in sorted(t):
    h.update(name.encode()); h.update(t[name].astype('<f4').tobytes())
    trunc.update(name.encode()); trunc.update(t[name].astype('<f4').tobytes())
print(json.dumps({"hash": h.hexdigest(), "truncated512": trunc.hexdigest()[:48], "wte": t["wte"].tolist(), "shape": list(t["h.0.mlp.c_fc.weight"].shape)}))
`,
    [file],
  );
  const py = JSON.parse(out) as { hash: string; truncated512: string; wte: number[][]; shape: number[] };
  assert.equal(py.hash, hash);
  assert.notEqual(py.truncated512, hash, 'a truncated BLAKE2b-512 is a different hash');
  assert.deepEqual(py.shape, [3, 4]);
  assert.ok(Math.abs(py.wte[2][1] - Math.sin(5)) < 1e-6, 'Math.abs(py.wte[2][1] - Math.sin(5)) < 1e-6');
});

test('a tensor with NaN is refused and no file (not even a temp file) is left behind', async () => {
  const dir = tempDir();
  const t = sample();
  t.get('wte')!.data[3] = NaN;
  await assert.rejects(
    writeSafetensors(path.join(dir, 'model.safetensors'), t),
    /NaN or Infinity.*'wte'|'wte' holds NaN/,
  );
  assert.deepEqual(await fs.readdir(dir), []);
});

test('a truncated checkpoint is detected, not hashed', async () => {
  const file = path.join(tempDir(), 'model.safetensors');
  await writeSafetensors(file, sample());
  const { size } = await fs.stat(file);
  await fs.truncate(file, size - 5);
  await assert.rejects(hashSafetensorsFile(file), /truncated/);
  await assert.rejects(readSafetensors(file), /truncated/);
});
