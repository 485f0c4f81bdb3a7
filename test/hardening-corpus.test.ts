// Hostile corpus input: a cycle's corpus.path and curate.domain.reference come from anyone who can
// reach Temporal, so curation reads only inside MINERFLOW_DATA_ROOTS (symlinks resolved), refuses
// before opening anything, and names the field. Also: curation progress and cancellation.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { makeCurate } from '../activities/curate';
import { mapErrors } from '../activities/errors';
import { CorpusSchema, CurateSchema } from '../common/config';
import type { DatasetRef } from '../common/types';
import { curate, type CurateOptions, type CurateProgress } from '../curation/curate';
import { curationPlan, openStore, resolveCorpus } from '../infra/runtime';
import { parseDataRoots } from '../infra/settings';
import { FsStore, InvalidStoreKeyError } from '../infra/store/fs-store';
import { tempDir, testSettings } from './helpers/settings';

const curateInput = CurateSchema.parse({ minChars: 20, heldOutFraction: 0.3, nearDuplicates: { enabled: false } });
const corpusOf = (p: string) => CorpusSchema.parse({ path: p });
const outsideRoots =
  /is outside the folders corpora may be read from \(.*\); move the corpus into one of them, or add its folder to MINERFLOW_DATA_ROOTS/;

// The module object itself (an ES namespace's properties are read-only), as the code under test sees it.
const fsSync = createRequire(__filename)('node:fs') as typeof import('node:fs');

/** Files opened by curation while `fn` runs (fs.promises.open/readFile, fs.createReadStream). */
async function filesOpenedDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const opened: string[] = [];
  const p = fsSync.promises as unknown as Record<string, (...a: unknown[]) => unknown>;
  const s = fsSync as unknown as Record<string, (...a: unknown[]) => unknown>;
  const saved = { open: p.open, readFile: p.readFile, createReadStream: s.createReadStream };
  p.open = (file: unknown, ...rest: unknown[]) => (
    opened.push(String(file)),
    saved.open.call(fsSync.promises, file, ...rest)
  );
  p.readFile = (file: unknown, ...rest: unknown[]) => (
    opened.push(String(file)),
    saved.readFile.call(fsSync.promises, file, ...rest)
  );
  s.createReadStream = (file: unknown, ...rest: unknown[]) => (
    opened.push(String(file)),
    saved.createReadStream.call(fsSync, file, ...rest)
  );
  try {
    await fn().catch(() => undefined);
  } finally {
    Object.assign(p, { open: saved.open, readFile: saved.readFile });
    s.createReadStream = saved.createReadStream;
  }
  return opened;
}

const docs = (n: number, tag = 'doc') =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({ text: `${tag} ${i}: these words are plenty for the curator to keep this line ${i * 7919}.` }),
  ).join('\n') + '\n';

let root: string; // an allowed folder outside the data folder
let outside: string; // a folder outside every root, with a "secret"
before(async () => {
  root = tempDir('minerflow-root-');
  outside = tempDir('minerflow-outside-');
  await fs.writeFile(
    path.join(outside, 'secret.txt'),
    'TOP SECRET key material that must never reach a dataset, not even once.',
  );
  await fs.writeFile(path.join(root, 'a.jsonl'), docs(40));
});
after(async () => {
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(outside, { recursive: true, force: true });
});

test('MINERFLOW_DATA_ROOTS: path.delimiter-separated, resolved absolute; the data folder by default', () => {
  assert.deepEqual(parseDataRoots(undefined, 'data'), [path.resolve('data')]);
  assert.deepEqual(parseDataRoots(`/srv/corpora${path.delimiter}rel/x${path.delimiter}`, '/d'), [
    '/srv/corpora',
    path.resolve('rel/x'),
  ]);
  const s = testSettings();
  assert.deepEqual(s.dataRoots, [s.dataDir]);
  assert.deepEqual(testSettings({ MINERFLOW_DATA_ROOTS: root }).dataRoots, [root]);
});

test('a corpus outside the roots is refused before any file is opened, whether or not it exists', async () => {
  const settings = testSettings();
  const refusals: string[] = [];
  for (const p of [
    '/etc',
    '/etc/passwd',
    '/etc/no-such-file-minerflow',
    path.join(outside, 'secret.txt'),
    '/etc/*.conf',
    '../../../../../../etc',
  ]) {
    const opened = await filesOpenedDuring(async () => {
      await assert.rejects(curationPlan(corpusOf(p), curateInput, settings), (err: Error) => {
        assert.equal(err.name, 'CorpusError');
        assert.ok(err.message.startsWith(`corpus.path '${p}' is outside`), err.message);
        assert.match(err.message, outsideRoots);
        refusals.push(err.message.replace(`'${p}'`, "'X'"));
        return true;
      });
    });
    assert.deepEqual(opened, [], `nothing opened for ${p}`);
  }
  assert.equal(
    new Set(refusals).size,
    1,
    'an existing and a missing path get the same refusal: nothing was read to tell them apart',
  );
});

test('the curate activity refuses an outside corpus permanently (non-retryable CorpusError)', async () => {
  const settings = testSettings();
  const env = new MockActivityEnvironment();
  await assert.rejects(
    env.run(makeCurate(settings, openStore(settings.store)), { corpus: corpusOf('/etc'), curate: curateInput }),
    (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, 'err instanceof ApplicationFailure');
      assert.equal(err.nonRetryable, true);
      assert.equal(err.type, 'CorpusError');
      assert.match(err.message, /corpus\.path '\/etc' is outside/);
      return true;
    },
  );
  assert.deepEqual(
    await fs.readdir(settings.dataDir).then((d) => d.filter((e) => e === 'datasets')),
    [],
    'no dataset folder was started',
  );
});

test('a bad curate.domain.reference is reported as curate.domain.reference, not corpus.path', async () => {
  const settings = testSettings({ MINERFLOW_DATA_ROOTS: root });
  const withRef = (reference: string) => CurateSchema.parse({ ...curateInput, domain: { reference } });
  await assert.rejects(
    curationPlan(corpusOf(root), withRef('/etc'), settings),
    /^CorpusError: curate\.domain\.reference '\/etc' is outside/,
  );
  const missing = path.join(root, 'no-such-reference');
  const plan = await curationPlan(corpusOf(root), withRef(missing), settings);
  await assert.rejects(
    curate(plan.source, tempDir(), plan.opts, { roots: plan.roots }),
    new RegExp(`^CorpusError: curate\\.domain\\.reference '${missing}' does not exist`),
  );
  await assert.rejects(
    resolveCorpus('sample:nope', settings.dataDir, settings.dataRoots, 'curate.domain.reference'),
    /^CorpusError: curate\.domain\.reference 'sample:nope': unknown sample corpus/,
  );
});

test('an unknown sample: corpus is a CorpusError (not retried)', async () => {
  const settings = testSettings();
  await assert.rejects(
    mapErrors(() => curationPlan(corpusOf('sample:shakespeare'), curateInput, settings)),
    (err: unknown) => {
      assert.ok(
        err instanceof ApplicationFailure && err.nonRetryable && err.type === 'CorpusError',
        "err instanceof ApplicationFailure && err.nonRetryable && err.type === 'CorpusError'",
      );
      assert.match(err.message, /corpus\.path 'sample:shakespeare': unknown sample corpus; use sample:brown/);
      return true;
    },
  );
});

test('a symlink inside an allowed folder that points outside is refused by name, not followed', async () => {
  const settings = testSettings({ MINERFLOW_DATA_ROOTS: root });
  const corpus = tempDir('minerflow-links-');
  const dir = path.join(root, path.basename(corpus));
  await fs.rename(corpus, dir);
  await fs.writeFile(path.join(dir, 'good.jsonl'), docs(30));
  await fs.symlink(path.join(outside, 'secret.txt'), path.join(dir, 'leak.txt'));
  const plan = await curationPlan(corpusOf(dir), curateInput, settings);
  const out = tempDir();
  const opened = await filesOpenedDuring(async () => {
    await assert.rejects(curate(plan.source, out, plan.opts, { roots: plan.roots }), (err: Error) => {
      assert.equal(err.name, 'CorpusError');
      assert.match(
        err.message,
        new RegExp(`^corpus\\.path '${dir}': ${path.join(dir, 'leak.txt')} is a symbolic link to a place outside`),
      );
      assert.ok(!err.message.includes('secret.txt'), 'the target is not disclosed');
      return true;
    });
  });
  assert.ok(!opened.some((f) => f.includes('leak') || f.includes('secret')), `opened ${opened.join(', ')}`);
  // The link itself as the corpus, and a link to a folder outside: refused as well.
  await assert.rejects(curationPlan(corpusOf(path.join(dir, 'leak.txt')), curateInput, settings), outsideRoots);
  await fs.symlink(outside, path.join(root, 'outside-link'));
  await assert.rejects(
    curationPlan(corpusOf(path.join(root, 'outside-link', 'secret.txt')), curateInput, settings),
    outsideRoots,
  );
  // A link whose target is inside the roots is followed.
  await fs.rm(path.join(dir, 'leak.txt'));
  await fs.symlink(path.join(root, 'a.jsonl'), path.join(dir, 'inside.jsonl'));
  const ds = await curate(plan.source, out, plan.opts, { roots: plan.roots });
  assert.equal(ds.report.files, 2);
  assert.equal(ds.report.documentsIn, 70);
});

test('sample:brown works whatever the roots; a corpus inside an allowed root curates through the activity', async () => {
  const settings = testSettings({ MINERFLOW_DATA_ROOTS: root });
  const sample = await curationPlan(corpusOf('sample:brown:r'), curateInput, settings);
  assert.equal(sample.source, path.join(settings.dataDir, 'corpora', 'brown-r'));
  const env = new MockActivityEnvironment();
  const ds: DatasetRef = await env.run(makeCurate(settings, openStore(settings.store)), {
    corpus: corpusOf(path.join(root, 'a.jsonl')),
    curate: curateInput,
  });
  assert.equal(ds.documentsIn, 40);
  assert.ok(ds.trainDocuments > 0 && ds.heldOutDocuments > 0, 'ds.trainDocuments > 0 && ds.heldOutDocuments > 0');
  // A relative path that climbs out of the roots is refused even though it starts inside one.
  await assert.rejects(
    curationPlan(corpusOf(path.join(root, '..', path.basename(outside))), curateInput, settings),
    outsideRoots,
  );
});

test('store keys that could leave the store are refused with a non-retryable InvalidStoreKeyError', async () => {
  const store = new FsStore(tempDir());
  const file = path.join(root, 'a.jsonl');
  for (const key of ['/etc/passwd', '../escape', 'a/../../escape', 'a/../b', 'a\0b', 'a\\..\\b', '', 'C:/x', './a']) {
    await assert.rejects(store.put(key, file), InvalidStoreKeyError, `put ${JSON.stringify(key)}`);
    await assert.rejects(store.get(key), InvalidStoreKeyError);
    await assert.rejects(store.exists(key), InvalidStoreKeyError);
  }
  await assert.rejects(
    mapErrors(() => store.get('../x')),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.nonRetryable &&
      err.type === 'InvalidStoreKeyError' &&
      /store key '\.\.\/x' is invalid: it has a '\.\.' segment/.test(err.message),
  );
  await store.put('datasets/x/a..b.jsonl', file); // '..' inside a name is fine
  assert.equal(await store.exists('datasets/x/a..b.jsonl'), true);
});

const opts: CurateOptions = {
  ...curateInput,
  format: 'auto',
  textField: 'text',
  domain: { reference: null, quantile: 0.05 },
};

test('curation reports progress during a multi-document run', async () => {
  const dir = tempDir();
  await fs.writeFile(path.join(dir, 'big.jsonl'), docs(2500));
  const seen: CurateProgress[] = [];
  const ds = await curate(dir, tempDir(), opts, { onProgress: (p) => seen.push(p) });
  assert.equal(ds.report.documentsIn, 2500);
  const filter = seen.filter((p) => p.stage === 'filter');
  assert.ok(filter.length >= 2, `at least every 1000 documents: ${JSON.stringify(seen)}`);
  assert.ok(
    filter.every((p, i) => i === 0 || (p.documents > filter[i - 1].documents && p.bytes > filter[i - 1].bytes)),
    'counts grow',
  );
  assert.ok(
    filter.every((p) => p.documents <= 2500 && p.bytes > 0),
    'filter.every((p) => p.documents <= 2500 && p.bytes > 0)',
  );
});

test('an aborted signal stops curation with its reason and leaves no dataset folder, not even a half-written one', async () => {
  const dir = tempDir();
  await fs.writeFile(path.join(dir, 'big.jsonl'), docs(2500));
  const out = tempDir();
  const controller = new AbortController();
  const reason = new Error('activity cancelled: timed out');
  let calls = 0;
  await assert.rejects(
    curate(dir, out, opts, {
      signal: controller.signal,
      onProgress: () => (calls += 1) === 1 && controller.abort(reason),
    }),
    (err: unknown) => err === reason,
  );
  assert.equal(calls, 1, 'stopped right after the abort, not at the end');
  assert.deepEqual(await fs.readdir(out), [], 'neither the content-addressed folder nor its temp folder remains');
  // Already aborted: nothing is read at all.
  const opened = await filesOpenedDuring(() => curate(dir, out, opts, { signal: AbortSignal.abort(reason) }));
  assert.deepEqual(opened, []);
  assert.ok(
    (await filesOpenedDuring(() => curate(dir, tempDir(), opts))).includes(path.join(dir, 'big.jsonl')),
    'the spy does see reads',
  );
  // And the same input curates in full afterwards.
  const ds = await curate(dir, out, opts);
  assert.equal(ds.reused, false);
  assert.deepEqual((await fs.readdir(out)).sort(), [ds.id, 'inputs'].sort());
});

test('callers that pass only the data folder (the CLI) get the roots from MINERFLOW_DATA_ROOTS', async () => {
  const dataDir = tempDir();
  const saved = process.env.MINERFLOW_DATA_ROOTS;
  try {
    delete process.env.MINERFLOW_DATA_ROOTS;
    await assert.rejects(curationPlan(corpusOf(root), curateInput, dataDir), outsideRoots);
    process.env.MINERFLOW_DATA_ROOTS = `/nonexistent-minerflow-root${path.delimiter}${root}`;
    const plan = await curationPlan(corpusOf(root), curateInput, dataDir);
    assert.equal(plan.source, root);
    assert.deepEqual(plan.roots, ['/nonexistent-minerflow-root', root, path.join(dataDir, 'corpora')]);
  } finally {
    if (saved === undefined) delete process.env.MINERFLOW_DATA_ROOTS;
    else process.env.MINERFLOW_DATA_ROOTS = saved;
  }
});
