// Fine-tuning data built offline from plain text (the Brown corpus in tests and benches), by a
// recipe simple enough to state in a line each:
//  - instruct: "Continue the text:\n" + a sentence + "\n" (prompt, not trained) → the next sentence (trained);
//  - preference: the same prompt; chosen = the true next sentence, rejected = its words shuffled.
// Documents alternate between train and held-out by index, so no pair of sentences is in both.
import { Rng } from '../model/rng';
import type { PreferenceExample, SftExample } from './examples';

export const INSTRUCTION = 'Continue the text:\n';

/** Sentences of a document, whitespace collapsed; very short ones (headings, numbers) left out. */
export function sentences(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+(?=[A-Z"'(])/)
    .map((s) => s.trim())
    .filter((s) => s.split(' ').length >= 4);
}

/** Consecutive sentence pairs (prompt sentence, next sentence) of every document, at most `perDoc` each. */
function pairs(docs: string[], perDoc: number, maxChars: number): [string, string][] {
  const out: [string, string][] = [];
  for (const d of docs) {
    const s = sentences(d);
    for (let i = 0, n = 0; i + 1 < s.length && n < perDoc; i += 2) {
      if (s[i].length > maxChars || s[i + 1].length > maxChars) continue;
      out.push([s[i], s[i + 1]]);
      n += 1;
    }
  }
  return out;
}

const prompt = (sentence: string) => `${INSTRUCTION}${sentence}\n`;

export function instructExamples(docs: string[], opts: { perDoc?: number; maxChars?: number } = {}): SftExample[] {
  return pairs(docs, opts.perDoc ?? 20, opts.maxChars ?? 200).map(([a, b]) => ({
    parts: [
      { text: prompt(a), train: false },
      { text: b, train: true },
    ],
  }));
}

/** Words in a random order (seeded); a one-word sentence is left as it is. */
export function shuffleWords(sentence: string, rng: Rng): string {
  const w = sentence.split(' ');
  for (let i = w.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [w[i], w[j]] = [w[j], w[i]];
  }
  return w.join(' ');
}

export function preferenceExamples(
  docs: string[],
  opts: { perDoc?: number; maxChars?: number; seed?: number } = {},
): PreferenceExample[] {
  const rng = new Rng(opts.seed ?? 0);
  return pairs(docs, opts.perDoc ?? 20, opts.maxChars ?? 200)
    .map(([a, b]) => ({ prompt: prompt(a), chosen: b, rejected: shuffleWords(b, rng) }))
    .filter((p) => p.chosen !== p.rejected);
}

/** Documents split by index: even ones train, odd ones held out. */
export function splitDocs<T>(docs: T[]): { train: T[]; heldOut: T[] } {
  return { train: docs.filter((_, i) => i % 2 === 0), heldOut: docs.filter((_, i) => i % 2 === 1) };
}
