// Hashed character n-gram features: the text representation behind the domain filter and the
// diversity-aware sampler. Sparse term frequencies, hashed into a fixed number of dimensions.

export type SparseVector = Map<number, number>;

/** Sublinear (1 + ln tf) counts of character n-grams of the lower-cased, space-collapsed text. */
export function charNgrams(text: string, n: number, dims: number): SparseVector {
  const s = ` ${text.toLowerCase().replace(/\s+/g, ' ')} `;
  const counts: SparseVector = new Map();
  for (let i = 0; i + n <= s.length; i++) {
    let h = 0x811c9dc5;
    for (let j = i; j < i + n; j++) h = Math.imul(h ^ s.charCodeAt(j), 0x01000193);
    const k = (h >>> 0) % dims;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  for (const [k, c] of counts) counts.set(k, 1 + Math.log(c));
  return counts;
}

export function normalize(v: SparseVector): SparseVector {
  let sq = 0;
  for (const x of v.values()) sq += x * x;
  const norm = Math.sqrt(sq) || 1;
  for (const [k, x] of v) v.set(k, x / norm);
  return v;
}
