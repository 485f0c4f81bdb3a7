// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__: {str: str}}, then raw
// little-endian tensor bytes. We write tensors in sorted-name order and hash while writing, so the
// model hash costs nothing once training stops; the file appears only when complete (temp + rename).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { compareNames, createModelHasher } from './hash';

export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Writes `tensors` (F32) atomically to `file`; returns the blake2b-192 model hash (48 hex chars). */
export async function writeSafetensors(
  file: string,
  tensors: Map<string, StoredTensor>,
  metadata: Record<string, string> = {},
): Promise<string> {
  const names = [...tensors.keys()].sort(compareNames);
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const expected = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== expected)
      throw new Error(`tensor '${name}' has ${t.data.length} values but shape [${t.shape}]`);
    if (!allFinite(t.data))
      throw new Error(`tensor '${name}' holds NaN or Infinity; refusing to write a broken checkpoint`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align data to 8 bytes
  const headerBytes = Buffer.from(json, 'utf8');
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  const hasher = await createModelHasher();
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.write(lengthBytes);
    await handle.write(headerBytes);
    for (const name of names) {
      const t = tensors.get(name)!;
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      hasher.add(name, bytes);
      await handle.write(bytes);
    }
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await fs.rename(tmp, file);
  return hasher.hex();
}

/** A plain loop: Array.prototype.every with a callback costs ~10× more on a multi-GB checkpoint. */
function allFinite(data: Float32Array): boolean {
  for (let i = 0; i < data.length; i++) if (data[i] - data[i] !== 0) return false; // NaN and ±Inf give NaN
  return true;
}

export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  const buf = await fs.readFile(file);
  const { header, dataStart } = parseHeader(buf, file);
  const tensors = new Map<string, StoredTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = entry as HeaderEntry;
    if (e.dtype !== 'F32') throw new Error(`${file}: tensor '${name}' has dtype ${e.dtype}; only F32 is supported`);
    const [a, b] = e.data_offsets;
    const bytes = buf.subarray(dataStart + a, dataStart + b);
    tensors.set(name, {
      shape: e.shape,
      data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
    });
  }
  return { tensors, metadata: (header.__metadata__ as Record<string, string>) ?? {} };
}

/** Parses the header at the start of a safetensors buffer; validates sizes so a truncated file fails clearly. */
export function parseHeader(buf: Buffer, file: string): { header: Record<string, unknown>; dataStart: number } {
  if (buf.length < 8) throw new Error(`${file}: not a safetensors file (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${file}: header of ${n} bytes runs past the end of the file (truncated?)`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const dataStart = 8 + n;
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [, end] = (entry as HeaderEntry).data_offsets;
    if (dataStart + end > buf.length)
      throw new Error(`${file}: tensor '${name}' runs past the end of the file (truncated?)`);
  }
  return { header, dataStart };
}
