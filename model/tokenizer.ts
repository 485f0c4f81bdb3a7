// Tokenizers: raw bytes (vocabulary 256) or byte-level BPE (model/bpe.ts) trained on the curated
// train split. Both round-trip any UTF-8 text losslessly. Documents are joined with a blank line,
// which the model learns as a boundary. A tokenizer is saved as tokenizer.json beside the weights:
// the ids a model was trained on mean nothing without it.
import { promises as fs } from 'node:fs';
import { BpeTokenizer, MAX_BPE_VOCAB, PRETOKENIZER, trainBpe, type BpeProgress, type Merge } from './bpe';

export const BYTE_VOCAB_SIZE = 256;

/** A token stream: bytes for the byte tokenizer, 16-bit ids for a BPE vocabulary. */
export type TokenIds = Uint8Array | Uint16Array;

export type TokenizerType = 'bytes' | 'bpe';

/** The config fields that choose a tokenizer (model.tokenizer, model.vocabSize). */
export interface TokenizerSettings {
  tokenizer: TokenizerType;
  vocabSize: number; // bpe only: bytes is always 256
}

export interface Tokenizer {
  readonly type: TokenizerType;
  readonly vocabSize: number;
  encode(text: string): TokenIds;
  encodeDocuments(docs: Iterable<string>): TokenIds;
  /** Any byte sequence, UTF-8 or not. */
  encodeBytes(bytes: Uint8Array): TokenIds;
  decode(ids: ArrayLike<number>): string;
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** The number of bytes `ids` stand for: the denominator of bits per byte. */
  byteLength(ids: ArrayLike<number>): number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeDocuments(docs: Iterable<string>): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const doc of docs) {
    const bytes = encoder.encode(doc + '\n\n');
    parts.push(bytes);
    total += bytes.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function decode(tokens: ArrayLike<number>): string {
  return decoder.decode(Uint8Array.from(tokens));
}

export class ByteTokenizer implements Tokenizer {
  readonly type = 'bytes';
  readonly vocabSize = BYTE_VOCAB_SIZE;
  encode(text: string): Uint8Array {
    return encoder.encode(text);
  }
  encodeDocuments(docs: Iterable<string>): Uint8Array {
    return encodeDocuments(docs);
  }
  encodeBytes(bytes: Uint8Array): Uint8Array {
    return Uint8Array.from(bytes);
  }
  decode(ids: ArrayLike<number>): string {
    return decoder.decode(this.decodeBytes(ids));
  }
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < BYTE_VOCAB_SIZE && Number.isInteger(ids[i])))
        throw new RangeError(
          `token id ${ids[i]} at position ${i} is outside the byte vocabulary of ${BYTE_VOCAB_SIZE}`,
        );
    }
    return Uint8Array.from(ids);
  }
  byteLength(ids: ArrayLike<number>): number {
    return ids.length;
  }
}

/** Byte-level BPE behind the Tokenizer interface. */
export class BpeTextTokenizer implements Tokenizer {
  readonly type = 'bpe';
  constructor(readonly bpe: BpeTokenizer) {}
  get vocabSize(): number {
    return this.bpe.vocabSize;
  }
  encode(text: string): Uint16Array {
    return this.bpe.encode(text);
  }
  encodeDocuments(docs: Iterable<string>): Uint16Array {
    return this.bpe.encodeDocuments(docs);
  }
  encodeBytes(bytes: Uint8Array): Uint16Array {
    return this.bpe.encodeBytes(bytes);
  }
  decode(ids: ArrayLike<number>): string {
    return this.bpe.decode(ids);
  }
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return this.bpe.decodeBytes(ids);
  }
  byteLength(ids: ArrayLike<number>): number {
    return this.bpe.byteLength(ids);
  }
}

/**
 * The tokenizer `settings` ask for, trained on `texts` if it is BPE (deterministic: the same
 * texts and settings give the same merges). The vocabulary may come out smaller than asked on a
 * tiny corpus (no pair left occurring twice); model.vocabSize is then the tokenizer's. `onProgress`
 * (for heartbeats) is called periodically and does not change the result.
 */
export function trainTokenizer(
  settings: TokenizerSettings,
  texts: Iterable<string>,
  onProgress?: (p: BpeProgress) => void,
): Tokenizer {
  if (settings.tokenizer === 'bytes') return new ByteTokenizer();
  return new BpeTextTokenizer(trainBpe(texts, settings.vocabSize, { onProgress }).tokenizer);
}

/** The name a dataset's trained tokenizer is kept under, beside its splits (bump the version when training changes). */
export function datasetTokenizerFile(settings: TokenizerSettings): string {
  return settings.tokenizer === 'bytes' ? 'tokenizer-bytes.json' : `tokenizer-bpe-${settings.vocabSize}.v1.json`;
}

// --- tokenizer.json ----------------------------------------------------------------------------
export const TOKENIZER_FORMAT = 'minerflow-tokenizer';

export type TokenizerFile =
  | { format: typeof TOKENIZER_FORMAT; version: 1; type: 'bytes'; vocabSize: 256 }
  | {
      format: typeof TOKENIZER_FORMAT;
      version: 1;
      type: 'bpe';
      vocabSize: number;
      pretokenizer: string;
      merges: Merge[];
    };

/** The file's text: compact and deterministic (same tokenizer, same bytes). */
export function serializeTokenizer(t: Tokenizer): string {
  const file: TokenizerFile =
    t instanceof BpeTextTokenizer
      ? {
          format: TOKENIZER_FORMAT,
          version: 1,
          type: 'bpe',
          vocabSize: t.vocabSize,
          pretokenizer: PRETOKENIZER,
          merges: t.bpe.merges.map(([a, b]) => [a, b] as const),
        }
      : { format: TOKENIZER_FORMAT, version: 1, type: 'bytes', vocabSize: 256 };
  return JSON.stringify(file) + '\n';
}

/** Parses a tokenizer.json; `where` (a path or store key) names it in errors. */
export function parseTokenizer(text: string, where: string): Tokenizer {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TokenizerFileError(
      `${where}: not valid JSON (${(err as Error).message}); the file is truncated or corrupt`,
    );
  }
  const bad = (what: string) => new TokenizerFileError(`${where}: ${what}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('expected a JSON object');
  const f = raw as Record<string, unknown>;
  if (f.format !== TOKENIZER_FORMAT) throw bad(`format is ${JSON.stringify(f.format)}, expected "${TOKENIZER_FORMAT}"`);
  if (f.version !== 1)
    throw bad(`version ${JSON.stringify(f.version)} is not supported (this minerflow reads version 1)`);
  if (f.type === 'bytes') {
    if (f.vocabSize !== BYTE_VOCAB_SIZE)
      throw bad(`vocabSize ${JSON.stringify(f.vocabSize)}: a bytes tokenizer has ${BYTE_VOCAB_SIZE}`);
    return new ByteTokenizer();
  }
  if (f.type !== 'bpe') throw bad(`type ${JSON.stringify(f.type)}: expected "bytes" or "bpe"`);
  if (f.pretokenizer !== PRETOKENIZER)
    throw bad(
      `pretokenizer ${JSON.stringify(f.pretokenizer)} is unknown (this minerflow splits text with "${PRETOKENIZER}")`,
    );
  if (
    !Number.isInteger(f.vocabSize) ||
    (f.vocabSize as number) < BYTE_VOCAB_SIZE ||
    (f.vocabSize as number) > MAX_BPE_VOCAB
  ) {
    throw bad(
      `vocabSize ${JSON.stringify(f.vocabSize)}: expected an integer from ${BYTE_VOCAB_SIZE} to ${MAX_BPE_VOCAB}`,
    );
  }
  if (!Array.isArray(f.merges)) throw bad('merges is missing or not an array');
  const expected = (f.vocabSize as number) - BYTE_VOCAB_SIZE;
  if (f.merges.length !== expected)
    throw bad(
      `has ${f.merges.length} merges but vocabSize ${f.vocabSize as number} needs ${expected} (the file is truncated or edited)`,
    );
  try {
    return new BpeTextTokenizer(new BpeTokenizer(f.merges as Merge[]));
  } catch (err) {
    throw bad((err as Error).message);
  }
}

export class TokenizerFileError extends Error {
  override name = 'TokenizerFileError';
}

export async function saveTokenizer(file: string, t: Tokenizer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, serializeTokenizer(t));
  await fs.rename(tmp, file);
}

export async function loadTokenizer(file: string): Promise<Tokenizer> {
  return parseTokenizer(await fs.readFile(file, 'utf8'), file);
}

/** Held-out loss in bits per byte: comparable across tokenizers, unlike loss per token. */
export function bitsPerByte(lossNatsPerToken: number, tokens: number, bytes: number): number {
  return (lossNatsPerToken * tokens) / (bytes * Math.LN2);
}

/**
 * Bits per byte of an evaluation that scored `scoredTokens` next-token predictions on `stream`
 * (model/evaluate.ts predicts tokens 1…n of consecutive windows from the start of the stream).
 */
export function evaluationBitsPerByte(
  tokenizer: Tokenizer,
  stream: TokenIds,
  lossNatsPerToken: number,
  scoredTokens: number,
): number {
  const bytes = tokenizer.byteLength(stream.subarray(1, 1 + scoredTokens));
  return bitsPerByte(lossNatsPerToken, scoredTokens, bytes);
}
