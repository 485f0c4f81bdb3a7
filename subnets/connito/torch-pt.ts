// torch.save's file format, written and read without Python: what Connito publishes its checkpoints
// in (`torch.save({"model_state_dict": {name: tensor}}, path)`). The file is an uncompressed zip:
//   archive/data.pkl           the object, pickled (protocol 2); each tensor is
//                              torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
//                              with its storage as a persistent id ('storage', torch.FloatStorage, '<key>', 'cpu', numel)
//   archive/.format_version    "1", archive/.storage_alignment "64", archive/byteorder "little" (torch ≥ 2)
//   archive/data/<key>         each storage's raw little-endian bytes, aligned to 64 bytes in the file
//   archive/version            "3\n", archive/.data/serialization_id
// The reader takes what torch.load(weights_only=True) takes for a dict of tensors: contiguous
// float32 / float16 / bfloat16 tensors (views at an offset into a shared storage included).
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { compareNames, createModelHasher } from '../../model/hash';

export type TorchDtype = 'float32' | 'float16' | 'bfloat16';

/** A tensor as torch stores it: C-contiguous, raw little-endian element bytes. */
export interface PtTensor {
  dtype: TorchDtype;
  shape: number[];
  bytes: Uint8Array;
}

const STORAGE_OF: Record<TorchDtype, string> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
};
const DTYPE_OF = new Map(Object.entries(STORAGE_OF).map(([d, s]) => [s, d as TorchDtype]));
export const ITEM_BYTES: Record<TorchDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };
const ALIGN = 64; // torch aligns every record's data to 64 bytes (mmap-able)
const ARCHIVE = 'archive';

export class TorchFormatError extends Error {
  override name = 'TorchFormatError';
}

// ---------------------------------------------------------------------------------------------
// Connito's model hash over a state dict (helper.py get_model_hash)

/** blake2b(digest_size=24) over the names sorted, each name's UTF-8 bytes then its tensor's raw bytes. */
export async function stateDictHash(tensors: Map<string, PtTensor>): Promise<string> {
  const hasher = await createModelHasher();
  for (const name of [...tensors.keys()].sort(compareNames)) hasher.add(name, tensors.get(name)!.bytes);
  return hasher.hex();
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Writes `torch.save({"model_state_dict": tensors})` to `file` atomically (temp + rename) and
 * returns Connito's hash of the state dict.
 */
export async function writeStateDict(file: string, tensors: Map<string, PtTensor>): Promise<string> {
  const names = [...tensors.keys()].sort(compareNames);
  for (const name of names) checkTensor(name, tensors.get(name)!);
  const records: [string, Uint8Array][] = [
    ['data.pkl', pickleStateDict(names.map((n) => [n, tensors.get(n)!]))],
    ['.format_version', ascii('1')],
    ['.storage_alignment', ascii(String(ALIGN))],
    ['byteorder', ascii('little')],
    ...names.map((n, key): [string, Uint8Array] => [`data/${key}`, tensors.get(n)!.bytes]),
    ['version', ascii('3\n')],
    [
      '.data/serialization_id',
      ascii(
        BigInt('0x' + randomBytes(8).toString('hex'))
          .toString()
          .padStart(20, '0'),
      ),
    ],
  ];
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await writeZip(
      handle,
      records.map(([name, data]) => [`${ARCHIVE}/${name}`, data]),
    );
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await fs.rename(tmp, file);
  return stateDictHash(tensors);
}

function checkTensor(name: string, t: PtTensor): void {
  if (!(t.dtype in STORAGE_OF))
    throw new TorchFormatError(`tensor '${name}': dtype '${t.dtype}' is not supported (float32, float16 or bfloat16)`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new TorchFormatError(`tensor '${name}': shape [${t.shape}] must be non-negative integers`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.bytes.byteLength !== n * ITEM_BYTES[t.dtype])
    throw new TorchFormatError(
      `tensor '${name}': ${t.bytes.byteLength} bytes, but shape [${t.shape}] of ${t.dtype} needs ${n * ITEM_BYTES[t.dtype]}`,
    );
}

function ascii(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

/** The pickle torch.save makes of {"model_state_dict": {name: tensor}} (protocol 2, no memo). */
function pickleStateDict(tensors: [string, PtTensor][]): Uint8Array {
  const out: number[] = [0x80, 2]; // PROTO 2
  const op = (...b: number[]) => out.push(...b);
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    op(0x58, ...u32(b.length), ...b); // BINUNICODE
  };
  const global = (module: string, name: string) => op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1')); // GLOBAL
  const int = (n: number) => {
    if (n < 0x100)
      op(0x4b, n); // BININT1
    else if (n < 0x10000)
      op(0x4d, n & 0xff, n >>> 8); // BININT2
    else if (n < 0x80000000)
      op(0x4a, ...u32(n)); // BININT
    else {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(BigInt(n));
      op(0x8a, 8, ...b); // LONG1
    }
  };
  const tuple = (xs: number[]) => {
    if (xs.length === 0) return op(0x29); // EMPTY_TUPLE
    if (xs.length > 3) op(0x28); // MARK
    xs.forEach(int);
    op(xs.length <= 3 ? [0, 0x85, 0x86, 0x87][xs.length] : 0x74); // TUPLE1..3 / TUPLE
  };
  op(0x7d); // EMPTY_DICT
  str('model_state_dict');
  op(0x7d);
  tensors.forEach(([name, t], key) => {
    if (key % 1000 === 0) op(0x28); // MARK: pickle batches SETITEMS by 1000
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    str(name);
    global('torch._utils', '_rebuild_tensor_v2');
    op(0x28, 0x28); // MARK (args, MARK (persistent id
    str('storage');
    global('torch', STORAGE_OF[t.dtype]);
    str(String(key));
    str('cpu');
    int(numel);
    op(0x74, 0x51); // TUPLE, BINPERSID
    int(0); // storage offset
    tuple(t.shape);
    tuple(stride);
    op(0x89); // NEWFALSE: requires_grad
    global('collections', 'OrderedDict');
    op(0x29, 0x52); // EMPTY_TUPLE, REDUCE: backward hooks
    op(0x74, 0x52); // TUPLE, REDUCE
    if (key % 1000 === 999 || key === tensors.length - 1) op(0x75); // SETITEMS
  });
  op(0x73, 0x2e); // SETITEM, STOP
  return Uint8Array.from(out);
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

// An uncompressed zip with data aligned to 64 bytes; zip64 fields only where a size or offset needs them.
async function writeZip(handle: fs.FileHandle, records: [string, Uint8Array][]): Promise<void> {
  const central: Buffer[] = [];
  let pos = 0;
  const write = async (b: Uint8Array) => {
    await handle.write(b, 0, b.byteLength, pos);
    pos += b.byteLength;
  };
  const MAX32 = 0xffffffff;
  for (const [name, data] of records) {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const offset = pos;
    const big = data.byteLength >= MAX32 || offset >= MAX32;
    const zip64Local = big ? zip64Extra([data.byteLength, data.byteLength]) : Buffer.alloc(0);
    const headerLen = 30 + nameBytes.length + zip64Local.length;
    const pad = (ALIGN - ((offset + headerLen + 4) % ALIGN)) % ALIGN; // +4: the padding field's own header
    const padding = Buffer.alloc(4 + pad, 0x5a); // "FB" extra field, as torch pads
    padding.writeUInt16LE(0x4246, 0);
    padding.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(big ? 45 : 20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(0, 10); // time, date
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(big ? MAX32 : data.byteLength, 18);
    local.writeUInt32LE(big ? MAX32 : data.byteLength, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(zip64Local.length + padding.length, 28);
    await write(Buffer.concat([local, nameBytes, zip64Local, padding]));
    await write(data);

    const zip64Central = big ? zip64Extra([data.byteLength, data.byteLength, offset]) : Buffer.alloc(0);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(big ? 45 : 20, 4); // version made by
    c.writeUInt16LE(big ? 45 : 20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(0, 10);
    c.writeUInt32LE(0, 12);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(big ? MAX32 : data.byteLength, 20);
    c.writeUInt32LE(big ? MAX32 : data.byteLength, 24);
    c.writeUInt16LE(nameBytes.length, 28);
    c.writeUInt16LE(zip64Central.length, 30);
    c.writeUInt32LE(big ? MAX32 : offset, 42);
    central.push(c, nameBytes, zip64Central);
  }
  const cdOffset = pos;
  const cd = Buffer.concat(central);
  await write(cd);
  const n = records.length;
  if (cdOffset + cd.length >= MAX32 || n >= 0xffff) {
    const z = Buffer.alloc(56 + 20);
    z.writeUInt32LE(0x06064b50, 0); // zip64 end of central directory
    z.writeBigUInt64LE(44n, 4);
    z.writeUInt16LE(45, 12);
    z.writeUInt16LE(45, 14);
    z.writeBigUInt64LE(BigInt(n), 24);
    z.writeBigUInt64LE(BigInt(n), 32);
    z.writeBigUInt64LE(BigInt(cd.length), 40);
    z.writeBigUInt64LE(BigInt(cdOffset), 48);
    z.writeUInt32LE(0x07064b50, 56); // its locator
    z.writeBigUInt64LE(BigInt(cdOffset + cd.length), 64);
    z.writeUInt32LE(1, 72);
    await write(z);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Math.min(n, 0xffff), 8);
  end.writeUInt16LE(Math.min(n, 0xffff), 10);
  end.writeUInt32LE(Math.min(cd.length, MAX32), 12);
  end.writeUInt32LE(Math.min(cdOffset, MAX32), 16);
  await write(end);
}

function zip64Extra(values: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * values.length);
  b.writeUInt16LE(0x0001, 0);
  b.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface ZipEntry {
  size: number;
  localOffset: number;
  method: number;
}

/** The state dict of a file torch.save wrote: `{"model_state_dict": {...}}` or a bare dict of tensors. */
export async function readStateDict(file: string): Promise<Map<string, PtTensor>> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const entries = await readCentralDirectory(handle, size, file);
    const pkl = [...entries.keys()].find((n) => n.endsWith('/data.pkl') && n.split('/').length === 2);
    if (!pkl) throw new TorchFormatError(`${file}: no <archive>/data.pkl record; not a file torch.save wrote`);
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const record = async (name: string) => {
      const e = entries.get(prefix + name);
      if (!e) throw new TorchFormatError(`${file}: record '${prefix + name}' is missing (truncated?)`);
      return readEntry(handle, e, size, file, prefix + name);
    };
    const order = entries.has(prefix + 'byteorder') ? Buffer.from(await record('byteorder')).toString() : 'little';
    if (order !== 'little')
      throw new TorchFormatError(`${file}: byteorder '${order}'; only little-endian is supported`);
    const storages: { key: string; dtype: TorchDtype; numel: number }[] = [];
    const root = unpickle(await record('data.pkl'), file, storages);
    const loaded = new Map<string, Uint8Array>();
    for (const s of storages) {
      if (loaded.has(s.key)) continue;
      const bytes = await record(`data/${s.key}`);
      if (bytes.byteLength < s.numel * ITEM_BYTES[s.dtype])
        throw new TorchFormatError(
          `${file}: storage data/${s.key} has ${bytes.byteLength} bytes, but ${s.numel} ${s.dtype} elements need ${s.numel * ITEM_BYTES[s.dtype]} (truncated?)`,
        );
      loaded.set(s.key, bytes);
    }
    const stateDict =
      root instanceof Map && root.get('model_state_dict') instanceof Map ? root.get('model_state_dict') : root;
    if (!(stateDict instanceof Map)) throw new TorchFormatError(`${file}: holds no dict of tensors`);
    const out = new Map<string, PtTensor>();
    for (const [name, value] of stateDict as Map<unknown, unknown>) {
      if (typeof name !== 'string' || !(value instanceof TensorRef))
        throw new TorchFormatError(`${file}: entry '${String(name)}' of the state dict is not a tensor`);
      out.set(name, value.materialise(loaded.get(value.storage.key)!, file, name));
    }
    return out;
  } finally {
    await handle.close();
  }
}

async function readAt(handle: fs.FileHandle, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  const { bytesRead } = await handle.read(b, 0, len, pos);
  return b.subarray(0, bytesRead);
}

async function readCentralDirectory(handle: fs.FileHandle, size: number, file: string): Promise<Map<string, ZipEntry>> {
  const tailLen = Math.min(size, 22 + 0xffff + 20);
  const tail = await readAt(handle, size - tailLen, tailLen);
  const at = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (at < 0 || at + 22 > tail.length)
    throw new TorchFormatError(`${file}: no zip end-of-central-directory record (truncated, or not a torch.save file)`);
  let count = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  if (at >= 20 && tail.readUInt32LE(at - 20) === 0x07064b50) {
    const z64At = Number(tail.readBigUInt64LE(at - 20 + 8));
    const z = await readAt(handle, z64At, 56);
    if (z.length < 56 || z.readUInt32LE(0) !== 0x06064b50)
      throw new TorchFormatError(`${file}: broken zip64 end-of-central-directory record`);
    count = Number(z.readBigUInt64LE(32));
    cdSize = Number(z.readBigUInt64LE(40));
    cdOffset = Number(z.readBigUInt64LE(48));
  }
  if (cdOffset + cdSize > size)
    throw new TorchFormatError(`${file}: central directory runs past the end of the file (truncated?)`);
  const cd = await readAt(handle, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50)
      throw new TorchFormatError(`${file}: broken central directory entry ${i}`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    let size32: number = cd.readUInt32LE(p + 24);
    let offset32: number = cd.readUInt32LE(p + 42);
    // zip64 extra: the 8-byte values replace whichever 32-bit fields are 0xffffffff, in order
    const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
    for (let q = 0; q + 4 <= extra.length; q += 4 + extra.readUInt16LE(q + 2)) {
      if (extra.readUInt16LE(q) !== 0x0001) continue;
      let r = q + 4;
      if (cd.readUInt32LE(p + 24) === 0xffffffff) {
        size32 = Number(extra.readBigUInt64LE(r));
        r += 8;
      }
      if (cd.readUInt32LE(p + 20) === 0xffffffff) r += 8;
      if (cd.readUInt32LE(p + 42) === 0xffffffff) offset32 = Number(extra.readBigUInt64LE(r));
    }
    entries.set(name, { size: size32, localOffset: offset32, method: cd.readUInt16LE(p + 10) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

async function readEntry(
  handle: fs.FileHandle,
  e: ZipEntry,
  size: number,
  file: string,
  name: string,
): Promise<Uint8Array> {
  if (e.method !== 0)
    throw new TorchFormatError(
      `${file}: record '${name}' is compressed (method ${e.method}); torch.save stores records uncompressed`,
    );
  const local = await readAt(handle, e.localOffset, 30);
  if (local.length < 30 || local.readUInt32LE(0) !== 0x04034b50)
    throw new TorchFormatError(`${file}: record '${name}' has no local header at ${e.localOffset} (truncated?)`);
  const start = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (start + e.size > size)
    throw new TorchFormatError(`${file}: record '${name}' runs past the end of the file (truncated?)`);
  return readAt(handle, start, e.size);
}

/** A tensor in the pickle, before its storage's bytes are read. */
class TensorRef {
  constructor(
    readonly storage: { key: string; dtype: TorchDtype; numel: number },
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}

  materialise(bytes: Uint8Array, file: string, name: string): PtTensor {
    const { dtype } = this.storage;
    const numel = this.shape.reduce((a, b) => a * b, 1);
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expected)
        throw new TorchFormatError(
          `${file}: tensor '${name}' is not contiguous (shape [${this.shape}], stride [${this.stride}]); save tensor.contiguous()`,
        );
      expected *= this.shape[i];
    }
    const item = ITEM_BYTES[dtype];
    if ((this.offset + numel) * item > bytes.byteLength)
      throw new TorchFormatError(`${file}: tensor '${name}' runs past its storage data/${this.storage.key}`);
    const own = bytes.slice(this.offset * item, (this.offset + numel) * item); // a copy: tensors never alias
    return { dtype, shape: [...this.shape], bytes: own };
  }
}

class Global {
  constructor(readonly name: string) {}
}

const MARK = Symbol('mark');

/**
 * A pickle machine for what torch.save writes: the opcodes of protocols 2–4 that containers,
 * numbers and strings use, and only the globals torch.load(weights_only=True) allows for tensors.
 */
function unpickle(data: Uint8Array, file: string, storages: TensorRef['storage'][]): unknown {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (why: string): never => {
    throw new TorchFormatError(`${file}: data.pkl at byte ${p}: ${why}`);
  };
  const need = (n: number) => {
    if (p + n > b.length) fail('ends early (truncated?)');
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('no MARK on the stack');
    return stack.splice(i).slice(1);
  };
  const line = () => {
    const end = b.indexOf(0x0a, p);
    if (end < 0) fail('unterminated line');
    const s = b.subarray(p, end).toString('latin1');
    p = end + 1;
    return s;
  };
  const str = (n: number) => {
    need(n);
    const s = b.subarray(p, p + n).toString('utf8');
    p += n;
    return s;
  };
  const ints = (v: unknown): number[] => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) fail(`expected a tuple of ints, got ${String(v)}`);
    return v as number[];
  };
  const call = (fn: unknown, args: unknown): unknown => {
    const name = fn instanceof Global ? fn.name : String(fn);
    if (name === 'collections.OrderedDict') return new Map();
    if (name === 'torch._utils._rebuild_tensor_v2') {
      const [storage, offset, shape, stride] = args as unknown[];
      if (!storages.includes(storage as TensorRef['storage'])) fail('a tensor whose storage is not a persistent id');
      return new TensorRef(storage as TensorRef['storage'], offset as number, ints(shape), ints(stride));
    }
    return fail(`calls ${name}, which a weights-only load refuses`);
  };
  for (;;) {
    need(1);
    const op = b[p++];
    switch (op) {
      case 0x80: // PROTO
        p += 1;
        break;
      case 0x95: // FRAME
        p += 8;
        break;
      case 0x2e: // STOP
        return stack.pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const m = new Map();
        for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
        stack.push(m);
        break;
      }
      case 0x6c: // LIST
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1..3
      case 0x86:
      case 0x87: {
        const n = op - 0x84;
        stack.push(stack.splice(stack.length - n));
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(b[p++], stack.at(-1));
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(b.readUInt32LE(p), stack.at(-1));
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack.at(-1));
        break;
      case 0x68: // BINGET
        need(1);
        stack.push(memo.get(b[p++]));
        break;
      case 0x6a: // LONG_BINGET
        need(4);
        stack.push(memo.get(b.readUInt32LE(p)));
        p += 4;
        break;
      case 0x58: // BINUNICODE
        need(4);
        p += 4;
        stack.push(str(b.readUInt32LE(p - 4)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        need(1);
        p += 1;
        stack.push(str(b[p - 1]));
        break;
      case 0x8d: // BINUNICODE8
        need(8);
        p += 8;
        stack.push(str(Number(b.readBigUInt64LE(p - 8))));
        break;
      case 0x42: // BINBYTES
      case 0x43: {
        // SHORT_BINBYTES
        const n = op === 0x43 ? (need(1), b[p++]) : (need(4), (p += 4), b.readUInt32LE(p - 4));
        need(n);
        stack.push(b.subarray(p, p + n));
        p += n;
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(new Global(`${module}.${line()}`));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = stack.pop();
        stack.push(new Global(`${String(stack.pop())}.${String(name)}`));
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(b.readInt32LE(p));
        p += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(b[p++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(b.readUInt16LE(p));
        p += 2;
        break;
      case 0x8a: {
        // LONG1
        need(1);
        const n = b[p++];
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[p + i]);
        if (n > 0 && b[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        stack.push(b.readDoubleBE(p));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x51: {
        // BINPERSID
        const pid = stack.pop();
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof Global))
          return fail(`unsupported persistent id ${String(pid)}`);
        const storageName = pid[1].name.replace(/^torch\./, '');
        const dtype = DTYPE_OF.get(storageName);
        if (!dtype)
          return fail(`storage type ${pid[1].name} is not supported (float32, float16 or bfloat16 tensors only)`);
        const s = { key: String(pid[2]), dtype, numel: Number(pid[4]) };
        storages.push(s);
        stack.push(s);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = stack.pop();
        stack.push(call(stack.pop(), args));
        break;
      }
      case 0x62: // BUILD: an OrderedDict's __dict__ (state_dict()._metadata) is not part of the tensors
        stack.pop();
        break;
      case 0x73: {
        // SETITEM
        const v = stack.pop();
        const k = stack.pop();
        (stack.at(-1) as Map<unknown, unknown>).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const m = stack.at(-1) as Map<unknown, unknown>;
        for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
        break;
      }
      case 0x61: // APPEND
        (stack.at(-2) as unknown[]).push(stack.pop());
        break;
      case 0x65: {
        // APPENDS
        const items = popMark();
        (stack.at(-1) as unknown[]).push(...items);
        break;
      }
      default:
        return fail(`opcode 0x${op.toString(16)} is not one torch.save writes for a dict of tensors`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dtype conversion (round to nearest, ties to even: what torch's .to(dtype) does)

const f32 = new Float32Array(1);
const u32v = new Uint32Array(f32.buffer);

/** Our float32 values as `dtype` bytes; throws naming the tensor if a value is not finite there. */
export function fromFloat32(name: string, data: Float32Array, shape: number[], dtype: TorchDtype): PtTensor {
  if (!(dtype in STORAGE_OF))
    throw new TorchFormatError(`tensor '${name}': dtype '${dtype}' is not supported (float32, float16 or bfloat16)`);
  const n = data.length;
  const bad = (i: number): never => {
    throw new TorchFormatError(
      `tensor '${name}': value ${data[i]} at index ${i} is not finite as ${dtype}; refusing to write a broken checkpoint`,
    );
  };
  if (dtype === 'float32') {
    for (let i = 0; i < n; i++) if (data[i] - data[i] !== 0) bad(i); // NaN and ±Inf give NaN
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return { dtype, shape, bytes };
  }
  const out = new Uint16Array(n);
  const conv = dtype === 'float16' ? f32ToF16 : f32ToBf16;
  const inf = dtype === 'float16' ? 0x7c00 : 0x7f80; // exponent all ones: Inf or NaN
  for (let i = 0; i < n; i++) {
    out[i] = conv(data[i]);
    if ((out[i] & inf) === inf) bad(i);
  }
  const bytes = new Uint8Array(out.buffer);
  return { dtype, shape, bytes };
}

export function toFloat32(t: PtTensor): Float32Array {
  const n = t.bytes.byteLength / ITEM_BYTES[t.dtype];
  if (t.dtype === 'float32') return new Float32Array(t.bytes.slice().buffer);
  const h = new Uint16Array(t.bytes.slice().buffer, 0, n);
  const out = new Float32Array(n);
  const conv = t.dtype === 'float16' ? f16ToF32 : (x: number) => ((u32v[0] = x << 16), f32[0]);
  for (let i = 0; i < n; i++) out[i] = conv(h[i]);
  return out;
}

function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32v[0];
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN stays a (quiet) NaN
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32v[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is right (up to inf)
  return sign | h;
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
