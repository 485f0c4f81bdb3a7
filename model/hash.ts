// The Connito model hash: sort the checkpoint's tensor names; feed each name's UTF-8 bytes, then
// the tensor's raw bytes, to BLAKE2b with a 24-byte digest (a real 192-bit BLAKE2b, whose digest
// size is a parameter, not a truncated BLAKE2b-512). hash-wasm runs at hashlib's speed.
import { promises as fs } from 'node:fs';
import { createBLAKE2b, type IHasher } from 'hash-wasm';

export const MODEL_HASH_HEX_LENGTH = 48;

/**
 * Python's sorted() order (by code point). JavaScript's default sort compares UTF-16 units, which
 * differs for names with characters above U+FFFF, and the hash must match the validators'.
 */
export function compareNames(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

export interface ModelHasher {
  /** Add one tensor; callers must add tensors in sorted-name order. */
  add(name: string, bytes: Uint8Array): void;
  hex(): string;
}

export async function createModelHasher(): Promise<ModelHasher> {
  const h: IHasher = await createBLAKE2b(192);
  h.init();
  let last: string | undefined;
  return {
    add(name, bytes) {
      if (last !== undefined && compareNames(name, last) <= 0)
        throw new Error(`model hash: tensor '${name}' added after '${last}'; names must be sorted`);
      last = name;
      h.update(Buffer.from(name, 'utf8'));
      h.update(bytes);
    },
    hex: () => h.digest('hex'),
  };
}

/** Hashes a safetensors file on disk, reading each tensor's bytes in chunks (bounded memory). */
export async function hashSafetensorsFile(file: string, chunkBytes = 8 << 20): Promise<string> {
  const handle = await fs.open(file, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    await handle.read(lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    const { size } = await handle.stat();
    if (n > size) throw new Error(`${file}: header length ${n} exceeds the file size ${size}`);
    const headBuf = Buffer.alloc(8 + n);
    await handle.read(headBuf, 0, 8 + n, 0);
    const header = JSON.parse(headBuf.subarray(8).toString('utf8')) as Record<
      string,
      { data_offsets: [number, number] }
    >;
    const hasher = await createBLAKE2b(192);
    hasher.init();
    const chunk = Buffer.alloc(chunkBytes);
    for (const name of Object.keys(header)
      .filter((k) => k !== '__metadata__')
      .sort(compareNames)) {
      const [a, b] = header[name].data_offsets;
      if (8 + n + b > size) throw new Error(`${file}: tensor '${name}' runs past the end of the file (truncated?)`);
      hasher.update(Buffer.from(name, 'utf8'));
      for (let pos = a; pos < b; pos += chunkBytes) {
        const len = Math.min(chunkBytes, b - pos);
        await handle.read(chunk, 0, len, 8 + n + pos);
        hasher.update(chunk.subarray(0, len));
      }
    }
    return hasher.digest('hex');
  } finally {
    await handle.close();
  }
}
