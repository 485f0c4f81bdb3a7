// Near-duplicate detection: MinHash signatures over word shingles, indexed by LSH banding
// (Broder 1997; Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3). Candidates
// from the bands are confirmed by their estimated Jaccard similarity, so what is reported as a
// near-duplicate really is above the threshold.

export interface MinHashOptions {
  permutations: number;
  shingleWords: number;
  seed: number;
}

/** murmur3's 32-bit finaliser: a cheap, well-mixed permutation of 32-bit integers. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over a string's UTF-16 code units. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const WORD = /[\p{L}\p{N}]+/gu;

export class MinHasher {
  private readonly seeds: Uint32Array;

  constructor(readonly opts: MinHashOptions) {
    this.seeds = new Uint32Array(opts.permutations);
    for (let i = 0; i < opts.permutations; i++) this.seeds[i] = fmix32(opts.seed * 0x9e3779b1 + i + 1);
  }

  /** 32-bit hashes of the text's word k-grams (lower-cased, punctuation ignored). */
  shingles(text: string): Uint32Array {
    const words = (text.toLowerCase().match(WORD) ?? []).map(fnv1a);
    const k = Math.min(this.opts.shingleWords, Math.max(1, words.length));
    const out = new Uint32Array(Math.max(0, words.length - k + 1));
    for (let i = 0; i < out.length; i++) {
      let h = words[i];
      for (let j = 1; j < k; j++) h = Math.imul(h ^ words[i + j], 0x9e3779b1) + j;
      out[i] = fmix32(h);
    }
    return out;
  }

  /** The MinHash signature: for each permutation, the minimum permuted shingle hash. */
  signature(text: string): Uint32Array {
    return this.signatureOf(this.shingles(text));
  }

  signatureOf(shingles: Uint32Array): Uint32Array {
    const n = this.opts.permutations;
    const sig = new Uint32Array(n).fill(0xffffffff);
    const seeds = this.seeds;
    for (let s = 0; s < shingles.length; s++) {
      const x = shingles[s];
      for (let p = 0; p < n; p++) {
        const v = fmix32(x ^ seeds[p]);
        if (v < sig[p]) sig[p] = v;
      }
    }
    return sig;
  }
}

/** Fraction of equal positions: an unbiased estimate of the Jaccard similarity of the shingle sets. */
export function estimatedJaccard(a: Uint32Array, b: Uint32Array): number {
  let eq = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) eq += 1;
  return eq / a.length;
}

/** Exact Jaccard similarity of two shingle sets (for labelling and tests). */
export function exactJaccard(a: Uint32Array, b: Uint32Array): number {
  const sa = new Set(a);
  const sb = new Set(b);
  let inter = 0;
  for (const x of sa) if (sb.has(x)) inter += 1;
  return inter / (sa.size + sb.size - inter || 1);
}

/**
 * Bands × rows minimising the (equally weighted) areas of false positives below the threshold
 * and false negatives above it — the same choice as datasketch's MinHashLSH.
 */
export function optimalBands(threshold: number, permutations: number): { bands: number; rows: number } {
  const integrate = (f: (s: number) => number, a: number, b: number) => {
    const n = 100; // Simpson's rule, even n
    const h = (b - a) / n;
    let sum = f(a) + f(b);
    for (let i = 1; i < n; i++) sum += f(a + i * h) * (i % 2 ? 4 : 2);
    return (sum * h) / 3;
  };
  let best = { bands: 1, rows: permutations, error: Infinity };
  for (let b = 1; b <= permutations; b++) {
    for (let r = 1; r <= Math.floor(permutations / b); r++) {
      const p = (s: number) => 1 - (1 - s ** r) ** b; // probability a pair of similarity s becomes a candidate
      const error = integrate(p, 0, threshold) + integrate((s) => 1 - p(s), threshold, 1);
      if (error < best.error) best = { bands: b, rows: r, error };
    }
  }
  return { bands: best.bands, rows: best.rows };
}

/** An LSH index over signatures that also confirms candidates by estimated Jaccard. */
export class NearDuplicateIndex {
  readonly bands: number;
  readonly rows: number;
  private readonly buckets: Map<number, number[]>[];
  private readonly signatures: Uint32Array[] = [];

  constructor(
    readonly threshold: number,
    permutations: number,
  ) {
    ({ bands: this.bands, rows: this.rows } = optimalBands(threshold, permutations));
    this.buckets = Array.from({ length: this.bands }, () => new Map());
  }

  get size(): number {
    return this.signatures.length;
  }

  private bandKey(sig: Uint32Array, band: number): number {
    let h = band + 1;
    for (let i = band * this.rows; i < (band + 1) * this.rows; i++) h = fmix32(Math.imul(h, 0x9e3779b1) ^ sig[i]);
    return h;
  }

  /** The most similar indexed signature at or above the threshold, if any. */
  query(sig: Uint32Array): { id: number; similarity: number } | undefined {
    let best: { id: number; similarity: number } | undefined;
    const tried = new Set<number>();
    for (let b = 0; b < this.bands; b++) {
      for (const id of this.buckets[b].get(this.bandKey(sig, b)) ?? []) {
        if (tried.has(id)) continue;
        tried.add(id);
        const similarity = estimatedJaccard(sig, this.signatures[id]);
        if (similarity >= this.threshold && (!best || similarity > best.similarity)) best = { id, similarity };
      }
    }
    return best;
  }

  /** Adds a signature; returns its id. */
  insert(sig: Uint32Array): number {
    const id = this.signatures.length;
    this.signatures.push(sig);
    for (let b = 0; b < this.bands; b++) {
      const key = this.bandKey(sig, b);
      const bucket = this.buckets[b].get(key);
      if (bucket) bucket.push(id);
      else this.buckets[b].set(key, [id]);
    }
    return id;
  }

  signature(id: number): Uint32Array {
    return this.signatures[id];
  }
}
