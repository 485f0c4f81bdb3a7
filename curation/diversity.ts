// A diversity-aware sample for when the budget is smaller than the clean corpus: greedy k-center
// (farthest-first traversal) over compact character n-gram sketches, so the sample covers the
// corpus's topics instead of over-drawing its most common one.
import { charNgrams } from './features';

export const SKETCH_DIMS = 256;

/** A unit-length dense sketch of the text (1 KB), cheap enough to keep for every document. */
export function sketch(text: string): Float32Array {
  const out = new Float32Array(SKETCH_DIMS);
  for (const [k, x] of charNgrams(text, 4, 1 << 20)) {
    // Signed feature hashing keeps inner products unbiased.
    out[k % SKETCH_DIMS] += (k >>> 10) & 1 ? x : -x;
  }
  let sq = 0;
  for (const x of out) sq += x * x;
  const n = Math.sqrt(sq) || 1;
  for (let i = 0; i < out.length; i++) out[i] /= n;
  return out;
}

/** Indices of `k` sketches chosen farthest-first (cosine distance), starting from `first`. */
export function farthestFirst(sketches: Float32Array[], k: number, first = 0): number[] {
  const n = sketches.length;
  if (k >= n) return sketches.map((_, i) => i);
  const dist = new Float64Array(n).fill(Infinity);
  const chosen: number[] = [];
  let next = first;
  for (let c = 0; c < k; c++) {
    chosen.push(next);
    const s = sketches[next];
    let far = -1;
    let farDist = -1;
    for (let i = 0; i < n; i++) {
      let dot = 0;
      const t = sketches[i];
      for (let d = 0; d < SKETCH_DIMS; d++) dot += s[d] * t[d];
      const dd = Math.min(dist[i], 1 - dot);
      dist[i] = dd;
      if (dd > farDist) {
        farDist = dd;
        far = i;
      }
    }
    dist[next] = -1;
    next = far;
  }
  return chosen.sort((a, b) => a - b);
}
