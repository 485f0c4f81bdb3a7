// Our model hash against a Connito-style reference in Python: load the checkpoint's tensors, sort
// their names, feed each name's bytes and the tensor's raw bytes to hashlib.blake2b(digest_size=24).
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { hashSafetensorsFile } from '../model/hash';
import { writeSafetensors } from '../model/safetensors';
import { python } from './helpers/python';
import { tempDir } from './helpers/settings';

const STREAMING_REFERENCE = path.join(__dirname, '..', 'bench', 'python', 'blake2b_file.py');

/** The reference miner's way: every tensor loaded (safetensors + numpy), names sorted. */
function connitoReference(file: string): { hash: string; truncated512: string } {
  const out = python(
    `
import hashlib, json, sys
from safetensors.numpy import load_file
sd = load_file(sys.argv[1])
h = hashlib.blake2b(digest_size=24)
h512 = hashlib.blake2b()
for name in sorted(sd):
    for x in (name.encode("utf-8"), sd[name].tobytes()):
        h.update(x); h512.update(x)
print(json.dumps({"hash": h.hexdigest(), "truncated512": h512.hexdigest()[:48]}))
`,
    [file],
  );
  return JSON.parse(out) as { hash: string; truncated512: string };
}

/** bench/python/blake2b_file.py: the same stream read straight from the file, in tiny chunks here. */
function streamingReference(file: string, chunkBytes: number): string {
  const out = python(`import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")`, [
    STREAMING_REFERENCE,
    file,
    String(chunkBytes),
  ]);
  return (JSON.parse(out) as { hex: string }).hex;
}

test('our checkpoint hash equals the Connito-style Python hash (and is a real BLAKE2b-192, not a truncated BLAKE2b-512)', async () => {
  const file = path.join(tempDir(), 'model.safetensors');
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  // Names whose sorted order differs from insertion and numeric order: 'layer.10' < 'layer.2', 'B' < 'a'.
  for (const [name, n] of [
    ['layer.2.w', 37],
    ['layer.10.w', 64],
    ['a.bias', 5],
    ['B.scale', 1],
    ['wte', 1000],
  ] as const) {
    tensors.set(name, { shape: [n], data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + n) * 0.1) });
  }
  const whileWriting = await writeSafetensors(file, tensors, { step: '42' });
  const ref = connitoReference(file);
  assert.match(ref.hash, /^[0-9a-f]{48}$/);
  assert.notEqual(ref.hash, ref.truncated512, 'digest size 24 is a BLAKE2b parameter, not a truncation');
  assert.equal(whileWriting, ref.hash, 'hash computed while writing');
  assert.equal(await hashSafetensorsFile(file), ref.hash, 'hash streamed from the file');
  assert.equal(await hashSafetensorsFile(file, 7), ref.hash, 'chunk boundaries inside tensors do not matter');
  assert.equal(streamingReference(file, 7), ref.hash, 'the benchmark reference agrees');
});

test('a checkpoint written by Python safetensors (mixed dtypes, data not in name order, an empty tensor) hashes the same', async () => {
  const file = path.join(tempDir(), 'py.safetensors');
  python(
    `
import sys
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(7)
save_file({
    "z.last.f32": rng.standard_normal((3, 5)).astype(np.float32),
    "experts.1.f16": rng.standard_normal((4, 4)).astype(np.float16),
    "experts.0.i64": np.arange(9, dtype=np.int64).reshape(3, 3),
    "Mask.u8": (rng.random(11) > 0.5).astype(np.uint8),
    "empty": np.zeros((0, 4), dtype=np.float32),
}, sys.argv[1], metadata={"format": "pt"})
`,
    [file],
  );
  const ref = connitoReference(file);
  assert.equal(await hashSafetensorsFile(file), ref.hash);
  assert.equal(await hashSafetensorsFile(file, 3), ref.hash);
  assert.equal(streamingReference(file, 5), ref.hash);
});
