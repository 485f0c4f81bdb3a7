// The domain filter: how close a document is to the target domain, as the cosine similarity of its
// character n-gram TF-IDF vector to the centroid of a reference sample of in-domain text. The cut-off
// is learned from the reference itself: the similarity that all but `quantile` of the reference
// documents reach (each scored against the centroid of the others).
import { charNgrams, normalize, type SparseVector } from './features';

export interface DomainOptions {
  quantile: number; // share of genuine in-domain documents we accept to lose
  ngram?: number;
  dims?: number;
}

export class DomainScorer {
  private constructor(
    private readonly idf: Float64Array,
    private readonly centroid: Float64Array,
    private readonly centroidNorm: number,
    readonly threshold: number,
    readonly referenceScores: { min: number; median: number; max: number },
    private readonly ngram: number,
  ) {}

  static fromReference(texts: string[], opts: DomainOptions): DomainScorer {
    if (texts.length < 3) throw new Error(`the domain reference needs at least 3 documents; it has ${texts.length}`);
    const ngram = opts.ngram ?? 4;
    const dims = opts.dims ?? 1 << 18;
    const tfs = texts.map((t) => charNgrams(t, ngram, dims));
    const df = new Float64Array(dims);
    for (const tf of tfs) for (const k of tf.keys()) df[k] += 1;
    const idf = new Float64Array(dims);
    for (let k = 0; k < dims; k++) idf[k] = Math.log((1 + texts.length) / (1 + df[k])) + 1;
    const vectors = tfs.map((tf) => weight(tf, idf));
    const sum = new Float64Array(dims);
    for (const v of vectors) for (const [k, x] of v) sum[k] += x;
    // Leave-one-out: each reference document against the centroid of the others.
    const scores = vectors.map((v) => {
      let dot = 0;
      let sq = 0;
      for (const [k, x] of v) dot += x * (sum[k] - x);
      for (let k = 0; k < dims; k++) {
        const c = sum[k] - (v.get(k) ?? 0);
        sq += c * c;
      }
      return dot / (Math.sqrt(sq) || 1);
    });
    const sorted = [...scores].sort((a, b) => a - b);
    const threshold = sorted[Math.min(sorted.length - 1, Math.floor(opts.quantile * sorted.length))];
    let norm = 0;
    for (let k = 0; k < dims; k++) norm += sum[k] * sum[k];
    return new DomainScorer(
      idf,
      sum,
      Math.sqrt(norm) || 1,
      threshold,
      { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] },
      ngram,
    );
  }

  /** Cosine similarity of `text` to the reference centroid. */
  score(text: string): number {
    const v = weight(charNgrams(text, this.ngram, this.idf.length), this.idf);
    let dot = 0;
    for (const [k, x] of v) dot += x * this.centroid[k];
    return dot / this.centroidNorm;
  }
}

function weight(tf: SparseVector, idf: Float64Array): SparseVector {
  const v: SparseVector = new Map();
  for (const [k, x] of tf) v.set(k, x * idf[k]);
  return normalize(v);
}
