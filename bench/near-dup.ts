// Near-duplicate detection on a labelled set: Brown documents plus planted near copies. Ours
// (MinHash + LSH + confirmation) next to Python datasketch's MinHashLSH at the same threshold,
// permutations and shingles, in the same run: precision, recall and documents per second.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CurateSchema } from '../common/config';
import { MinHasher, NearDuplicateIndex } from '../curation/minhash';
import { projectRoot } from '../infra/paths';
import { Rng } from '../model/rng';
import { brownDocs, nearCopy } from './corpora';
import { benchLine, note } from './report';

export async function nearDupBench(work: string): Promise<void> {
  const { threshold, permutations, shingleWords } = CurateSchema.parse({}).nearDuplicates;
  const rng = new Rng(42);
  const originals = await brownDocs(path.join(work, 'corpora'));
  const docs = originals.map((d, i) => ({ id: `o${i}`, text: d.text }));
  const planted = new Set<string>();
  for (let i = 0; i < originals.length; i += 3) {
    const id = `c${i}`;
    docs.push({ id, text: nearCopy(originals[i].text, rng) });
    planted.add(`${id}|o${i}`);
  }
  // Shuffle so copies meet their originals at random positions (a copy may come first).
  for (let i = docs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [docs[i], docs[j]] = [docs[j], docs[i]];
  }
  const file = path.join(work, 'near-dup.jsonl');
  await fs.writeFile(file, docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const key = (a: string, b: string) => (a.startsWith('c') ? `${a}|${b}` : `${b}|${a}`);
  const score = (pairs: [string, string][]) => {
    const predicted = new Set(pairs.map(([a, b]) => key(a, b)));
    const tp = [...predicted].filter((p) => planted.has(p)).length;
    return { precision: predicted.size ? tp / predicted.size : 1, recall: tp / planted.size };
  };

  // Ours: the same per-document work curation does (signature, query, insert).
  const t0 = performance.now();
  const hasher = new MinHasher({ permutations, shingleWords, seed: 1 });
  const index = new NearDuplicateIndex(threshold, permutations);
  const ids: string[] = [];
  const ourPairs: [string, string][] = [];
  for (const d of docs) {
    const sig = hasher.signature(d.text);
    const m = index.query(sig);
    if (m) ourPairs.push([d.id, ids[m.id]]);
    ids[index.insert(sig)] = d.id;
  }
  const ourSeconds = (performance.now() - t0) / 1000;

  const py = path.join(projectRoot(), '.tools', 'venv', 'bin', 'python');
  const out = JSON.parse(
    execFileSync(
      py,
      [
        path.join(__dirname, 'python', 'near_dup.py'),
        file,
        String(threshold),
        String(permutations),
        String(shingleWords),
      ],
      { encoding: 'utf8', maxBuffer: 1 << 26 },
    ),
  ) as {
    seconds: number;
    pairs: [string, string][];
  };
  const ours = score(ourPairs);
  const ref = score(out.pairs);
  note(
    `${docs.length} documents (${originals.length} Brown + ${planted.size} planted near copies), threshold ${threshold}, ${permutations} permutations, word ${shingleWords}-grams, LSH ${index.bands}×${index.rows}`,
  );
  note(
    `ours:       precision ${ours.precision.toFixed(3)} recall ${ours.recall.toFixed(3)} in ${ourSeconds.toFixed(2)} s`,
  );
  note(
    `datasketch: precision ${ref.precision.toFixed(3)} recall ${ref.recall.toFixed(3)} in ${out.seconds.toFixed(2)} s`,
  );
  const oursRate = docs.length / ourSeconds;
  const refRate = docs.length / out.seconds;
  benchLine('near-dup', oursRate, 'docs/s', refRate, 'docs/s', oursRate / refRate);
  if (ours.precision < 0.95 || ours.recall < 0.95) {
    throw new Error(
      `near-duplicate precision ${ours.precision.toFixed(3)} / recall ${ours.recall.toFixed(3)} is below the 0.95 goal`,
    );
  }
}
