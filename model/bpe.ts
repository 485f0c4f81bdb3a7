// Byte-level BPE, GPT-2 style. The base vocabulary is the 256 bytes, so every UTF-8 text (and
// every byte sequence) encodes losslessly; merges learned from a corpus add tokens 256, 257, …
// Text is first split into chunks (words with their leading space, digit runs, punctuation runs,
// whitespace) and merges never cross a chunk boundary, so tokens stay word-like and a chunk's
// encoding can be cached. Plain functions and one class; no I/O (model/tokenizer.ts reads files).

/** Ids must fit a Uint16Array. */
export const MAX_BPE_VOCAB = 65_536;
export const BASE_VOCAB = 256;
/** Names the pre-split rule below: a file trained with another rule must not be loaded with this one. */
export const PRETOKENIZER = 'gpt2-marks-digits3-v1';

// GPT-2's split, made Unicode-aware: combining marks stay with their letters (decomposed accents)
// and digit runs are cut into groups of at most 3 (numbers do not each become a token).
// Every character matches one alternative, so the chunks concatenate back to the input.
const SPLIT = /'(?:[sdmt]|ll|ve|re)| ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+/gu;
/** Longer chunks (a page of CJK, a run of dashes) are cut, so encoding one stays cheap. */
const MAX_CHUNK_UNITS = 64;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** The chunks of `text`, in order; they concatenate back to `text`. */
export function* preSplit(text: string): Generator<string> {
  for (const m of text.matchAll(SPLIT)) {
    const chunk = m[0];
    if (chunk.length <= MAX_CHUNK_UNITS) {
      yield chunk;
      continue;
    }
    for (let i = 0; i < chunk.length;) {
      let end = Math.min(chunk.length, i + MAX_CHUNK_UNITS);
      // Never cut a surrogate pair in two: each half would encode as U+FFFD.
      if (end < chunk.length && isHighSurrogate(chunk.charCodeAt(end - 1))) end -= 1;
      yield chunk.slice(i, end);
      i = end;
    }
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

const pairKey = (a: number, b: number) => a * MAX_BPE_VOCAB + b;

export type Merge = readonly [number, number];

export interface TrainBpeOptions {
  /** A pair seen fewer times than this is not merged (a merge seen once is memorisation). */
  minPairCount?: number;
  /** Progress for heartbeats: every 1000 texts or 100 merges, or 2 s, whichever comes first. Does not change the result. */
  onProgress?: (p: BpeProgress) => void;
}

export interface BpeProgress {
  stage: 'counting' | 'merging';
  texts: number;
  merges: number;
}

const PROGRESS_TEXTS = 1000;
const PROGRESS_MERGES = 100;
const PROGRESS_MS = 2000;

export interface BpeTrainingStats {
  chunks: number; // chunk occurrences counted
  distinctChunks: number;
  merges: number;
  seconds: number;
}

/**
 * Learns merges from `texts` until the vocabulary has `vocabSize` tokens (fewer if no pair occurs
 * `minPairCount` times). Chunk frequencies are counted once; each merge then updates pair counts
 * only in the chunks that contain the pair. Ties go to the smallest pair (left id, then right id),
 * so the same texts always give the same merges.
 */
export function trainBpe(
  texts: Iterable<string>,
  vocabSize: number,
  opts: TrainBpeOptions = {},
): { tokenizer: BpeTokenizer; stats: BpeTrainingStats } {
  checkVocabSize(vocabSize, 'vocabSize');
  const minPairCount = opts.minPairCount ?? 2;
  const t0 = performance.now();

  let lastReport = { at: performance.now(), texts: 0, merges: 0 };
  const report = (stage: BpeProgress['stage'], texts: number, merges: number) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (
      texts - lastReport.texts >= PROGRESS_TEXTS ||
      merges - lastReport.merges >= PROGRESS_MERGES ||
      now - lastReport.at >= PROGRESS_MS
    ) {
      lastReport = { at: now, texts, merges };
      opts.onProgress({ stage, texts, merges });
    }
  };

  const chunkCounts = new Map<string, number>();
  let chunks = 0;
  let textsSeen = 0;
  for (const text of texts) {
    report('counting', ++textsSeen, 0);
    for (const chunk of preSplit(text)) {
      chunkCounts.set(chunk, (chunkCounts.get(chunk) ?? 0) + 1);
      chunks += 1;
    }
  }
  // Sorted, so word indices (and so everything after) do not depend on the order texts came in.
  const distinct = [...chunkCounts.keys()].sort();
  const words: number[][] = distinct.map((c) => Array.from(utf8.encode(c)));
  const freqs: number[] = distinct.map((c) => chunkCounts.get(c)!);
  chunkCounts.clear();

  const pairCounts = new Map<number, number>();
  const where = new Map<number, Set<number>>(); // pair → words that (may) contain it
  words.forEach((w, wi) => {
    for (let i = 0; i + 1 < w.length; i++) {
      const k = pairKey(w[i], w[i + 1]);
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + freqs[wi]);
      let s = where.get(k);
      if (!s) where.set(k, (s = new Set()));
      s.add(wi);
    }
  });
  const heap = new PairHeap();
  for (const [k, n] of pairCounts) heap.push(n, k);

  const merges: Merge[] = [];
  while (BASE_VOCAB + merges.length < vocabSize) {
    const top = popCurrent(heap, pairCounts);
    if (!top || top.count < minPairCount) break;
    const a = Math.floor(top.key / MAX_BPE_VOCAB);
    const b = top.key % MAX_BPE_VOCAB;
    const z = BASE_VOCAB + merges.length;
    merges.push([a, b]);
    report('merging', textsSeen, merges.length);

    // Re-count each affected word: subtract its old pairs, merge, add its new pairs.
    const before = new Map<number, number>(); // pair → count before this merge, for pairs that changed
    const bump = (k: number, by: number) => {
      const old = pairCounts.get(k) ?? 0;
      if (!before.has(k)) before.set(k, old);
      const n = old + by;
      if (n === 0) pairCounts.delete(k);
      else pairCounts.set(k, n);
    };
    for (const wi of where.get(top.key) ?? []) {
      const w = words[wi];
      const f = freqs[wi];
      let found = false;
      for (let i = 0; i + 1 < w.length; i++)
        if (w[i] === a && w[i + 1] === b) {
          found = true;
          break;
        }
      if (!found) continue; // a stale entry: an earlier merge consumed the pair here
      for (let i = 0; i + 1 < w.length; i++) bump(pairKey(w[i], w[i + 1]), -f);
      const merged: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          merged.push(z);
          i += 1;
        } else merged.push(w[i]);
      }
      words[wi] = merged;
      for (let i = 0; i + 1 < merged.length; i++) {
        const k = pairKey(merged[i], merged[i + 1]);
        bump(k, f);
        if (merged[i] === z || merged[i + 1] === z) {
          let s = where.get(k);
          if (!s) where.set(k, (s = new Set()));
          s.add(wi);
        }
      }
    }
    where.delete(top.key);
    for (const [k, old] of before) {
      const n = pairCounts.get(k) ?? 0;
      if (n !== old && n > 0) heap.push(n, k);
    }
  }
  const tokenizer = new BpeTokenizer(merges);
  return {
    tokenizer,
    stats: { chunks, distinctChunks: distinct.length, merges: merges.length, seconds: (performance.now() - t0) / 1000 },
  };
}

/** Pops heap entries until one matches the pair's current count (older entries are stale). */
function popCurrent(heap: PairHeap, counts: Map<number, number>): { count: number; key: number } | undefined {
  for (;;) {
    const top = heap.pop();
    if (!top) return undefined;
    if (counts.get(top.key) === top.count) return top;
  }
}

/** A binary max-heap of (count, pair key): highest count first, then the smallest key. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  private before(i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.counts.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): { count: number; key: number } | undefined {
    const n = this.counts.length;
    if (n === 0) return undefined;
    const top = { count: this.counts[0], key: this.keys[0] };
    this.swap(0, n - 1);
    this.counts.pop();
    this.keys.pop();
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n - 1 && this.before(l, m)) m = l;
      if (r < n - 1 && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

function checkVocabSize(vocabSize: number, what: string): void {
  if (!Number.isInteger(vocabSize) || vocabSize < BASE_VOCAB || vocabSize > MAX_BPE_VOCAB) {
    throw new RangeError(
      `${what} = ${vocabSize}: a byte-level BPE vocabulary needs an integer from ${BASE_VOCAB} to ${MAX_BPE_VOCAB}`,
    );
  }
}

/** Keeps the chunk cache bounded: a long-running worker encodes many corpora. */
const MAX_CACHED_CHUNKS = 200_000;

/** Applies learned merges; the vocabulary is the 256 bytes plus one token per merge. */
export class BpeTokenizer {
  readonly vocabSize: number;
  readonly merges: readonly Merge[];
  private readonly ranks = new Map<number, number>(); // pair → merge index (lower merges first)
  private readonly tokenBytes: Uint8Array[]; // id → the bytes it stands for
  private readonly cache = new Map<string, Uint16Array>();

  /** `merges[i]` makes token 256 + i from two earlier tokens. Throws on a merge that cannot be. */
  constructor(merges: readonly Merge[]) {
    checkVocabSize(BASE_VOCAB + merges.length, 'BPE vocabulary (256 + merges)');
    this.merges = merges;
    this.vocabSize = BASE_VOCAB + merges.length;
    this.tokenBytes = Array.from({ length: BASE_VOCAB }, (_, i) => Uint8Array.of(i));
    merges.forEach((m, i) => {
      const id = BASE_VOCAB + i;
      if (!Array.isArray(m) || m.length !== 2 || !m.every((x) => Number.isInteger(x) && x >= 0 && x < id)) {
        throw new RangeError(`merge ${i} (token ${id}) is ${JSON.stringify(m)}: expected two token ids below ${id}`);
      }
      const k = pairKey(m[0], m[1]);
      if (this.ranks.has(k))
        throw new RangeError(`merge ${i} (token ${id}) repeats merge ${this.ranks.get(k)} [${m[0]}, ${m[1]}]`);
      this.ranks.set(k, i);
      const [left, right] = [this.tokenBytes[m[0]], this.tokenBytes[m[1]]];
      const bytes = new Uint8Array(left.length + right.length);
      bytes.set(left);
      bytes.set(right, left.length);
      this.tokenBytes.push(bytes);
    });
  }

  /** Token ids of `text` (lossless for any string without lone surrogates, which UTF-8 cannot carry). */
  encode(text: string): Uint16Array {
    const out = new IdBuffer(text.length);
    this.encodeInto(text, out);
    return out.result();
  }

  /** Documents joined by a blank line (as the byte tokenizer does), as one id stream. */
  encodeDocuments(docs: Iterable<string>): Uint16Array {
    const out = new IdBuffer(1 << 16);
    for (const doc of docs) this.encodeInto(doc + '\n\n', out);
    return out.result();
  }

  /** Any byte sequence. Valid UTF-8 encodes exactly as its text does; other bytes are split as Latin-1 characters. */
  encodeBytes(bytes: Uint8Array): Uint16Array {
    let text: string | undefined;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      text = undefined;
    }
    if (text !== undefined) return this.encode(text);
    const out = new IdBuffer(bytes.length);
    let offset = 0;
    for (const chunk of preSplit(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1'))) {
      out.push(this.mergeBytes(bytes.subarray(offset, offset + chunk.length)));
      offset += chunk.length;
    }
    return out.result();
  }

  /** The exact bytes the ids stand for. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i], i).length;
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]];
      out.set(b, offset);
      offset += b.length;
    }
    return out;
  }

  /** The text the ids stand for (invalid UTF-8, e.g. a sequence cut mid-character, shows as U+FFFD). */
  decode(ids: ArrayLike<number>): string {
    return lenientUtf8.decode(this.decodeBytes(ids));
  }

  /** How many bytes the ids stand for, without building them (for bits per byte). */
  byteLength(ids: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i], i).length;
    return total;
  }

  private bytesOf(id: number, position: number): Uint8Array {
    const b = this.tokenBytes[id];
    if (b === undefined)
      throw new RangeError(
        `token id ${id} at position ${position} is outside this tokenizer's vocabulary of ${this.vocabSize}`,
      );
    return b;
  }

  private encodeInto(text: string, out: IdBuffer): void {
    for (const chunk of preSplit(text)) {
      let ids = this.cache.get(chunk);
      if (!ids) {
        ids = this.mergeBytes(utf8.encode(chunk));
        if (this.cache.size >= MAX_CACHED_CHUNKS) this.cache.clear();
        this.cache.set(chunk, ids);
      }
      out.push(ids);
    }
  }

  /** One chunk: start from its bytes and apply the earliest-learned merge present until none is. */
  private mergeBytes(bytes: Uint8Array): Uint16Array {
    let ids: number[] = Array.from(bytes);
    while (ids.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = this.ranks.get(pairKey(ids[i], ids[i + 1]));
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const [a, b] = this.merges[best];
      const z = BASE_VOCAB + best;
      const next: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          next.push(z);
          i += 1;
        } else next.push(ids[i]);
      }
      ids = next;
    }
    return Uint16Array.from(ids);
  }
}

/** A growable Uint16Array. */
class IdBuffer {
  private buf: Uint16Array;
  private length = 0;

  constructor(capacity: number) {
    this.buf = new Uint16Array(Math.max(16, capacity));
  }

  push(ids: Uint16Array): void {
    if (this.length + ids.length > this.buf.length) {
      const bigger = new Uint16Array(Math.max(this.buf.length * 2, this.length + ids.length));
      bigger.set(this.buf.subarray(0, this.length));
      this.buf = bigger;
    }
    this.buf.set(ids, this.length);
    this.length += ids.length;
  }

  result(): Uint16Array {
    return this.buf.slice(0, this.length);
  }
}
