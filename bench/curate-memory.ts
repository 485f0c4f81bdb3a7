// Curation memory on a corpus 10× the sample (5,000 Brown-derived documents, ~60 MB of JSONL)
// next to the sample itself, each in a fresh process: streaming keeps the peak close.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../model/rng';
import { brownDocs, nearCopy } from './corpora';
import { benchLine, note } from './report';

export async function curateMemoryBench(work: string): Promise<void> {
  const docs = await brownDocs(path.join(work, 'corpora'));
  const rng = new Rng(7);
  const one = path.join(work, 'memory-1x.jsonl');
  const ten = path.join(work, 'memory-10x.jsonl');
  await fs.writeFile(one, docs.map((d) => JSON.stringify({ text: d.text })).join('\n') + '\n');
  const out = await fs.open(ten, 'w');
  for (let copy = 0; copy < 10; copy++) {
    // Heavily edited variants (30% of words changed): distinct documents, not near-duplicates.
    for (const d of docs)
      await out.write(JSON.stringify({ text: copy === 0 ? d.text : nearCopy(d.text, rng, 0.3) }) + '\n');
  }
  await out.close();
  const run = (corpus: string) =>
    JSON.parse(
      execFileSync(
        process.execPath,
        ['--import', 'tsx', path.join(__dirname, 'curate-child.ts'), corpus, path.join(work, `datasets-${Date.now()}`)],
        { encoding: 'utf8' },
      ),
    ) as {
      maxRssMB: number;
      seconds: number;
      documentsIn: number;
      kept: number;
    };
  const small = run(one);
  const big = run(ten);
  note(
    `1×:  ${small.documentsIn} documents, ${(await fs.stat(one)).size >> 20} MB, peak RSS ${small.maxRssMB.toFixed(0)} MB, ${(small.documentsIn / small.seconds).toFixed(0)} docs/s`,
  );
  note(
    `10×: ${big.documentsIn} documents, ${(await fs.stat(ten)).size >> 20} MB, peak RSS ${big.maxRssMB.toFixed(0)} MB, ${(big.documentsIn / big.seconds).toFixed(0)} docs/s, kept ${big.kept}`,
  );
  benchLine('curate-memory', big.maxRssMB, 'MB@10x', small.maxRssMB, 'MB@1x', small.maxRssMB / big.maxRssMB);
}
