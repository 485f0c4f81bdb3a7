// The Connito model hash of a 1 GiB safetensors checkpoint: ours (hashSafetensorsFile, hash-wasm
// BLAKE2b-192, streamed) next to Python hashlib.blake2b(digest_size=24) streaming the same sorted
// names and bytes of the same file, in the same run. The two digests must be equal.
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../infra/paths';
import { hashSafetensorsFile, MODEL_HASH_HEX_LENGTH } from '../model/hash';
import { benchLine, note } from './report';

const MIB = 1024 * 1024;
const MB = 1e6;

/** A few large F32 tensors, 1 GiB in all, like an MoE expert group's checkpoint. */
const TENSORS: [name: string, shape: number[]][] = [
  ['model.embed_tokens.weight', [65_536, 1024]], // 256 MiB each
  ['model.layers.0.mlp.experts.0.down_proj.weight', [1024, 65_536]],
  ['model.layers.0.mlp.experts.0.up_proj.weight', [65_536, 1024]],
  ['lm_head.weight', [65_536, 1024]],
];

export async function modelHashBench(work: string): Promise<void> {
  const dir = await fs.mkdtemp(path.join(work, 'model-hash-'));
  const file = path.join(dir, 'model.safetensors');
  try {
    const bytes = await writeCheckpoint(file);
    note(
      `${TENSORS.length} F32 tensors, ${(bytes / MIB).toFixed(0)} MiB of tensor data, file in the page cache for both (just written)`,
    );

    const t0 = performance.now();
    const ours = await hashSafetensorsFile(file);
    const oursSeconds = (performance.now() - t0) / 1000;

    const py = path.join(projectRoot(), '.tools', 'venv', 'bin', 'python');
    const out = execFileSync(
      existsSync(py) ? py : 'python3',
      [path.join(__dirname, 'python', 'blake2b_file.py'), file],
      { encoding: 'utf8' },
    );
    const ref = JSON.parse(out) as { hex: string; seconds: number; bytes: number };

    if (ours.length !== MODEL_HASH_HEX_LENGTH || ours !== ref.hex) {
      throw new Error(
        `model hash mismatch on ${file}: ours ${ours}, Python hashlib.blake2b(digest_size=24) ${ref.hex}`,
      );
    }
    if (ref.bytes !== bytes)
      throw new Error(`the Python reference hashed ${ref.bytes} tensor bytes, the file holds ${bytes}`);
    note(
      `digest ${ours} (both); ours ${oursSeconds.toFixed(2)} s, hashlib ${ref.seconds.toFixed(2)} s; MB = 10^6 bytes`,
    );
    const oursRate = bytes / MB / oursSeconds;
    const refRate = bytes / MB / ref.seconds;
    benchLine('model-hash', oursRate, 'MB/s', refRate, 'MB/s', oursRate / refRate);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Writes the safetensors format directly, tensor by tensor in 8 MiB chunks, so 1 GiB never sits in memory. */
async function writeCheckpoint(file: string): Promise<number> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of [...TENSORS].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const size = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));

  const handle = await fs.open(file, 'w');
  try {
    await handle.write(lengthBytes);
    await handle.write(Buffer.from(json, 'utf8'));
    const chunk = new Float32Array((8 * MIB) / 4);
    let x = 12345;
    for (let written = 0; written < offset; written += chunk.byteLength) {
      // Small weights from an LCG: finite, varied, cheap to make.
      for (let i = 0; i < chunk.length; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) | 0;
        chunk[i] = x / 2 ** 31 / 20;
      }
      const n = Math.min(chunk.byteLength, offset - written);
      await handle.write(new Uint8Array(chunk.buffer, 0, n));
    }
  } finally {
    await handle.close();
  }
  return offset;
}
