// A Gradients job's dataset: CSV as Python's csv module writes it, JSON array and lines, a URL
// served by a local HTTP server (size cap, status, no partial file), an s3:// object on s3rver,
// paths outside the allowed folders refused; prepareJobData deterministic, reused, counting drops.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { SftExample } from '../finetune/examples';
import { offlineJobData, rowsToFile } from '../finetune/offline-data';
import { FsStore } from '../infra/store/fs-store';
import {
  fetchDatasetFile,
  fetchOptionsFrom,
  parseCsv,
  parseDataset,
  type FetchOptions,
} from '../subnets/gradients/dataset';
import { prepareJobData, type PrepareJobDataInput } from '../subnets/gradients/prepare';
import { python } from './helpers/python';
import { S3RVER_CREDENTIALS, startS3rver } from './helpers/s3';
import { tempDir, testSettings } from './helpers/settings';

const root = tempDir('minerflow-gradients-data-');
const files: Record<string, Buffer> = {};
let server: http.Server;
let base = '';

before(async () => {
  server = http.createServer((req, res) => {
    const body = files[new URL(req.url!, 'http://x').pathname];
    if (req.url === '/busy.json') return void res.writeHead(503).end('try later');
    if (!body) return void res.writeHead(404).end('no such dataset');
    // Chunked unless the path asks for a declared length: the cap must hold either way.
    const length: Record<string, number> = req.url!.includes('declared') ? { 'content-length': body.length } : {};
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

function fetchOpts(extra: Partial<FetchOptions> = {}): FetchOptions {
  return { roots: [root], downloadDir: path.join(root, 'downloads'), ...extra };
}

test('CSV: records as Python csv.writer writes them (commas, quotes, line breaks, empty fields, CRLF)', () => {
  const records = [
    ['instruct', 'input', 'output'],
    ['Say "hi", twice.', '', 'hi\nhi'],
    ['a,b', '""', 'line one\r\nline two'],
    ['', 'x', ''],
  ];
  const written = python(
    'import csv, io, json, sys\nbuf = io.StringIO()\ncsv.writer(buf).writerows(json.loads(sys.argv[1]))\nsys.stdout.write(buf.getvalue())',
    [JSON.stringify(records)],
  );
  assert.ok(written.includes('\r\n') && written.includes('"Say ""hi"", twice."'), 'python quoted as RFC 4180 says');
  assert.deepEqual(parseCsv(written), records);
  // And Python reads what our demo data writes.
  const rows = offlineJobData('chat', 3).rows;
  const csvText = rowsToFile(rows, 'csv');
  const back = JSON.parse(
    python('import csv, io, json, sys\nprint(json.dumps(list(csv.DictReader(io.StringIO(sys.argv[1], newline="")))))', [
      csvText,
    ]),
  ) as Record<string, string>[];
  assert.deepEqual(
    back.map((r) => JSON.parse(r.conversations) as unknown),
    rows.map((r) => r.conversations),
  );
  assert.deepEqual(parseDataset(csvText, 'csv', 'demo.csv'), back);
});

test('CSV and JSON errors name the place', () => {
  assert.throws(() => parseCsv('a,b\n"x,y\n', 'f.csv'), /f.csv: line 2: quoted field is never closed/);
  assert.throws(() => parseCsv('a\n"x"y\n', 'f.csv'), /f.csv: line 2: text after a closing quote/);
  assert.throws(() => parseDataset('a,b\n1\n', 'csv', 'f.csv'), /f.csv: record 1 has 1 fields, the header 2/);
  assert.throws(() => parseDataset('{"a":1}\n{"a":\n', 'json', 'f.json'), /f.json: line 2 is not JSON/);
  assert.throws(() => parseDataset('[1]', 'json', 'f.json'), /f.json: element 0 is not a JSON object/);
  assert.deepEqual(parseDataset('\uFEFF[{"a":1}]', 'json', 'f'), [{ a: 1 }]);
  assert.deepEqual(parseDataset('{"a":1}\n\n{"a":2}\n', 's3', 'f'), [{ a: 1 }, { a: 2 }]);
});

test('URL datasets: streamed to a file named by its digest; 404, size cap and presigned queries handled', async () => {
  files['/ok.json'] = Buffer.from(JSON.stringify([{ a: 1 }]));
  files['/big.json'] = files['/big-declared.json'] = Buffer.alloc(5000, 32);
  const opts = fetchOpts();
  const got = await fetchDatasetFile(`${base}/ok.json?X-Amz-Signature=secret`, 's3', opts);
  assert.ok(
    path.basename(got.path).startsWith(`${got.sha256}-`),
    'path.basename(got.path).startsWith(`${got.sha256}-`)',
  );
  assert.deepEqual(JSON.parse(await fs.readFile(got.path, 'utf8')), [{ a: 1 }]);
  await assert.rejects(
    fetchDatasetFile(`${base}/missing.json?X-Amz-Signature=secret`, 'json', opts),
    (e: Error) => e.name === 'DatasetError' && /HTTP 404/.test(e.message) && !e.message.includes('secret'),
  );
  // A busy server may answer later: retryable, unlike a missing file.
  await assert.rejects(fetchDatasetFile(`${base}/busy.json`, 'json', opts), { name: 'TransientDatasetError' });
  await assert.rejects(
    fetchDatasetFile(`${base}/big-declared.json`, 'json', fetchOpts({ maxBytes: 4096 })),
    /big-declared.json is 5000 bytes, over the 4096 limit/,
  );
  await assert.rejects(
    fetchDatasetFile(`${base}/big.json`, 'json', fetchOpts({ maxBytes: 4096 })),
    /big.json is over the 4096-byte limit/,
  );
  // Nothing half-written stays behind.
  assert.deepEqual(
    (await fs.readdir(opts.downloadDir)).filter((f) => f.endsWith('.part')),
    [],
  );
});

test('local datasets only inside the allowed folders; hf and unknown schemes refused clearly', async () => {
  const inside = path.join(root, 'in.json');
  await fs.writeFile(inside, '[]');
  assert.equal((await fetchDatasetFile(inside, 'json', fetchOpts())).downloaded, false);
  const outside = path.join(tempDir(), 'out.json');
  await fs.writeFile(outside, '[]');
  await assert.rejects(fetchDatasetFile(outside, 'json', fetchOpts()), /is outside the folders/);
  const link = path.join(root, 'link.json');
  await fs.symlink(outside, link);
  await assert.rejects(fetchDatasetFile(link, 'json', fetchOpts()), /is outside the folders/);
  await assert.rejects(fetchDatasetFile('/etc/passwd', 'csv', fetchOpts()), /is outside the folders/);
  await assert.rejects(fetchDatasetFile('org/data', 'hf', fetchOpts()), /file_format 'hf'.*not supported/);
  await assert.rejects(fetchDatasetFile('ftp://x/y', 'json', fetchOpts()), /unsupported scheme/);
  // The worker's options: MINERFLOW_DATA_ROOTS (the data folder by default).
  const settings = testSettings();
  const fromSettings = fetchOptionsFrom(settings);
  assert.deepEqual(fromSettings.roots, [settings.dataDir]);
  await assert.rejects(fetchDatasetFile(inside, 'json', fromSettings), /is outside the folders/);
  fromSettings.s3?.destroy();
});

test('s3:// datasets are read with the S3 client', async () => {
  const s3server = await startS3rver(['jobs']);
  try {
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: s3server.endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    await client.send(new PutObjectCommand({ Bucket: 'jobs', Key: 't1/data.json', Body: '[{"a":2}]' }));
    const got = await fetchDatasetFile('s3://jobs/t1/data.json', 's3', fetchOpts({ s3: client }));
    assert.deepEqual(JSON.parse(await fs.readFile(got.path, 'utf8')), [{ a: 2 }]);
    await assert.rejects(fetchDatasetFile('s3://jobs/t1/none.json', 's3', fetchOpts({ s3: client })), /NoSuchKey/);
    client.destroy();
  } finally {
    await s3server.stop();
  }
});

test('prepareJobData: deterministic, reused when unchanged, drops counted, held-out split seeded', async () => {
  const d = offlineJobData('instruct', 60);
  const rows = [
    ...d.rows,
    { instruct: 'No answer here' }, // malformed: no output column
    { instruct: 'Empty answer', input: '', output: '   ' }, // empty
    { instruct: 'x'.repeat(5000), input: '', output: 'long' }, // too long
  ];
  files['/job.csv'] = Buffer.from(rowsToFile(rows, 'csv'));
  const input: PrepareJobDataInput = {
    taskId: 'task-1',
    taskType: d.taskType,
    dataset: `${base}/job.csv`,
    datasetType: d.datasetType,
    fileFormat: 'csv',
    maxChars: 4000,
  };
  const downloads = () => fs.readdir(path.join(root, 'downloads')).catch(() => [] as string[]);
  const downloadsBefore = await downloads();
  const storeA = new FsStore(tempDir());
  const stages: string[] = [];
  const a = await prepareJobData(input, { store: storeA, fetch: fetchOpts(), onProgress: (p) => stages.push(p.stage) });
  assert.deepEqual(stages, ['fetching', 'formatting', 'storing']);
  assert.equal(a.kind, 'sft');
  assert.equal(a.reused, false);
  assert.equal(a.documentsIn, 63);
  assert.deepEqual(a.dropped, { malformed: 1, empty: 1, tooLong: 1 });
  assert.equal(a.trainDocuments + a.heldOutDocuments, 60);
  assert.ok(a.heldOutDocuments >= 1 && a.heldOutDocuments < 20, `held out ${a.heldOutDocuments}`);
  const report = JSON.parse(await fs.readFile(await storeA.get(a.reportKey), 'utf8')) as { errors: string[] };
  assert.match(report.errors[0], /row 61: column 'output' \(field_output\) is missing/);
  const train = (await fs.readFile(await storeA.get(a.trainKey), 'utf8')).trim().split('\n');
  const first = JSON.parse(train[0]) as SftExample;
  assert.ok(
    first.parts.some((p) => p.train),
    'first.parts.some((p) => p.train)',
  );

  // Same input into another store: the same bytes; into the same store again: reused.
  const storeB = new FsStore(tempDir());
  const b = await prepareJobData(
    { ...input, datasetType: { ...d.datasetType } },
    { store: storeB, fetch: fetchOpts() },
  );
  assert.equal(b.id, a.id);
  for (const k of [a.trainKey, a.heldOutKey])
    assert.equal(await fs.readFile(await storeB.get(k), 'utf8'), await fs.readFile(await storeA.get(k), 'utf8'));
  const again = await prepareJobData({ ...input, taskId: 'task-2' }, { store: storeA, fetch: fetchOpts() });
  assert.deepEqual(again, { ...a, reused: true });
  // Another seed, another split; changed data, another id.
  const seeded = await prepareJobData({ ...input, seed: 1 }, { store: storeA, fetch: fetchOpts() });
  assert.notEqual(seeded.id, a.id);
  assert.notEqual(
    await fs.readFile(await storeA.get(seeded.heldOutKey), 'utf8'),
    await fs.readFile(await storeA.get(a.heldOutKey), 'utf8'),
  );
  // A cap on the held-out set moves the rest to train.
  const capped = await prepareJobData(
    { ...input, heldOutFraction: 0.5, maxHeldOut: 3 },
    { store: storeA, fetch: fetchOpts() },
  );
  assert.deepEqual([capped.heldOutDocuments, capped.trainDocuments], [3, 57]);
  files['/job.csv'] = Buffer.from(rowsToFile(rows.slice(1), 'csv'));
  assert.notEqual((await prepareJobData(input, { store: storeA, fetch: fetchOpts() })).id, a.id);
  // Downloads are removed once prepared.
  assert.deepEqual(await downloads(), downloadsBefore);
});

test('prepareJobData: preference data from a local JSON file; a wrong mapping fails naming the column', async () => {
  const d = offlineJobData('dpo', 12);
  const file = path.join(root, 'dpo.json');
  await fs.writeFile(file, rowsToFile(d.rows, 'json'));
  const store = new FsStore(tempDir());
  const base = { taskId: 't2', taskType: d.taskType, dataset: file, fileFormat: 'json' as const };
  // A download folder that does not exist yet (a local file needs none but prepare's scratch does).
  const fresh = fetchOpts({ downloadDir: path.join(tempDir(), 'not', 'yet') });
  const ref = await prepareJobData({ ...base, datasetType: d.datasetType }, { store, fetch: fresh });
  assert.equal(ref.kind, 'preference');
  assert.equal(ref.trainDocuments + ref.heldOutDocuments, 12);
  const line = JSON.parse((await fs.readFile(await store.get(ref.heldOutKey), 'utf8')).split('\n')[0]) as Record<
    string,
    string
  >;
  assert.deepEqual(Object.keys(line).sort(), ['chosen', 'prompt', 'rejected']);
  await assert.rejects(
    prepareJobData({ ...base, datasetType: { ...d.datasetType, field_chosen: 'best' } }, { store, fetch: fetchOpts() }),
    /0 usable examples of 12 rows.*row 1: column 'best' \(field_chosen\) is missing/,
  );
  await assert.rejects(
    prepareJobData({ ...base, taskType: 'GrpoTask', datasetType: {} }, { store, fetch: fetchOpts() }),
    /GrpoTask has no text examples to prepare/,
  );
});
