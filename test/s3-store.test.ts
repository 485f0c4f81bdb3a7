// The S3 checkpoint store against a real S3 server process (s3rver on loopback): multipart round
// trips, immutability, corruption detection, uploads cut mid-way, and clear configuration errors.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { openStore } from '../infra/runtime';
import { loadSettings } from '../infra/settings';
import { parseS3Uri, S3Store, type S3StoreOptions } from '../infra/store/s3-store';
import { ImmutableObjectError, ObjectNotFoundError } from '../infra/store/store';
import { hashSafetensorsFile } from '../model/hash';
import { writeSafetensors } from '../model/safetensors';
import { S3RVER_CREDENTIALS, startCuttingProxy, startS3rver, type S3Server } from './helpers/s3';
import { tempDir } from './helpers/settings';

const MIB = 1024 * 1024;
const BUCKET = 'checkpoints';
let server: S3Server;

before(async () => {
  server = await startS3rver([BUCKET]);
});
after(async () => {
  await server?.stop();
});

function s3Store(uri: string, extra: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store(uri, {
    cacheDir: tempDir('minerflow-s3cache-'),
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    partSizeBytes: 5 * MIB, // S3's minimum, so a few MB already go multipart
    queueSize: 2,
    ...extra,
  });
}

/** Counts the S3 commands a store sends, by name. */
function countCommands(store: S3Store): Map<string, number> {
  const counts = new Map<string, number>();
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      counts.set(context.commandName!, (counts.get(context.commandName!) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'testCommandCounter' },
  );
  return counts;
}

async function randomFile(bytes: number): Promise<string> {
  const file = path.join(tempDir(), 'blob.bin');
  await fs.writeFile(file, randomBytes(bytes));
  return file;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** A ~12 MB safetensors checkpoint (three 5 MB parts at the test part size) and its model hash. */
async function checkpointFile(seed: number): Promise<{ file: string; hash: string }> {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let x = seed;
  for (const [name, n] of [
    ['wte', 1_500_000],
    ['h.0.attn', 1_000_000],
    ['lm_head', 500_000],
  ] as const) {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    tensors.set(name, { shape: [n], data });
  }
  const file = path.join(tempDir(), 'model.safetensors');
  return { file, hash: await writeSafetensors(file, tensors) };
}

test('a multipart checkpoint round-trips: same bytes, same model hash, cached after the first get', async () => {
  const store = s3Store(`s3://${BUCKET}/roundtrip/`);
  assert.equal(store.uri, `s3://${BUCKET}/roundtrip`);
  const counts = countCommands(store);
  const { file, hash } = await checkpointFile(1);
  const size = (await fs.stat(file)).size;
  assert.ok(size > 2 * 5 * MIB, `checkpoint is ${size} bytes, enough for three parts`);
  const key = `checkpoints/${hash}/model.safetensors`;

  assert.equal(await store.exists(key), false);
  await store.put(key, file, { immutable: true });
  assert.equal(counts.get('UploadPartCommand'), 3, 'uploaded as three parts');
  assert.equal(counts.get('CompleteMultipartUploadCommand'), 1);
  assert.equal(await store.exists(key), true);
  // s3rver keeps it under the prefix, byte for byte.
  assert.equal(await sha256(server.objectFile(BUCKET, `roundtrip/${key}`)), await sha256(file));

  const got = await store.get(key);
  assert.notEqual(path.resolve(got), path.resolve(file));
  assert.equal(await sha256(got), await sha256(file));
  assert.equal(await hashSafetensorsFile(got), hash);
  assert.equal(await store.get(key), got, 'the verified cached copy is reused');
  assert.equal(counts.get('GetObjectCommand'), 1, 'the second get downloads nothing');
  // A cached copy changed locally is no longer vouched for: fetched and verified again.
  await fs.appendFile(got, 'x');
  assert.equal(await sha256(await store.get(key)), await sha256(file));
  assert.equal(counts.get('GetObjectCommand'), 2);

  // A small file goes in one PutObject and round-trips too.
  const small = await randomFile(1000);
  await store.put('runs/r1/metrics.jsonl', small);
  assert.equal(counts.get('PutObjectCommand'), 1);
  assert.equal(await sha256(await store.get('runs/r1/metrics.jsonl')), await sha256(small));
  // A mutable key may be replaced, and the cache follows the new bytes.
  const small2 = await randomFile(2000);
  await store.put('runs/r1/metrics.jsonl', small2);
  assert.equal(await sha256(await store.get('runs/r1/metrics.jsonl')), await sha256(small2));

  await assert.rejects(store.get('checkpoints/nope/model.safetensors'), ObjectNotFoundError);
});

test('an immutable object accepts the same bytes again and refuses different bytes', async () => {
  const store = s3Store(`s3://${BUCKET}/immutable`);
  const first = await randomFile(6 * MIB);
  const other = await randomFile(6 * MIB);
  const key = 'checkpoints/abc/model.safetensors';
  await store.put(key, first, { immutable: true });
  await store.put(key, first, { immutable: true }); // a retry of the same write
  const digestFirst = await sha256(first);
  const digestOther = await sha256(other);
  await assert.rejects(store.put(key, other, { immutable: true }), (err: Error) => {
    assert.ok(err instanceof ImmutableObjectError, `${err.name}: ${err.message}`);
    assert.match(err.message, /'checkpoints\/abc\/model\.safetensors' already exists .* with different content/);
    assert.ok(err.message.includes(digestFirst) && err.message.includes(digestOther), 'names both digests');
    return true;
  });
  assert.equal(
    await sha256(server.objectFile(BUCKET, `immutable/${key}`)),
    digestFirst,
    'the stored object is untouched',
  );
  assert.equal(await sha256(await store.get(key)), digestFirst);
});

test('a corrupted object is detected on download and never left in the cache', async () => {
  const cacheDir = tempDir('minerflow-s3cache-');
  const store = s3Store(`s3://${BUCKET}/corrupt`, { cacheDir });
  const file = await randomFile(7 * MIB);
  const key = 'checkpoints/def/model.safetensors';
  await store.put(key, file, { immutable: true });

  // Flip bytes in s3rver's own copy, behind the store's back (same length, so only the digest tells).
  const onDisk = server.objectFile(BUCKET, `corrupt/${key}`);
  const bytes = await fs.readFile(onDisk);
  bytes[3 * MIB] ^= 0xff;
  await fs.writeFile(onDisk, bytes);
  const expected = await sha256(file);
  const actual = createHash('sha256').update(bytes).digest('hex');

  await assert.rejects(store.get(key), (err: Error) => {
    assert.match(
      err.message,
      /store object 'checkpoints\/def\/model\.safetensors' in s3:\/\/checkpoints\/corrupt is corrupt/,
    );
    assert.ok(err.message.includes(`recorded sha256 is ${expected}`), err.message);
    assert.ok(err.message.includes(`hash to ${actual}`), err.message);
    return true;
  });
  assert.deepEqual(await filesUnder(cacheDir), [], 'nothing of the bad download stays in the cache');

  // Different bytes put behind the store's back with the old digest in their metadata: also caught.
  await store.client.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: `corrupt/${key}`,
      Body: await fs.readFile(await randomFile(1000)),
      Metadata: { sha256: expected },
    }),
  );
  await assert.rejects(store.get(key), /is corrupt: its recorded sha256 is/);
  // An object minerflow did not write has no digest to check against.
  await store.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'corrupt/foreign.bin', Body: Buffer.from('x') }));
  await assert.rejects(store.get('foreign.bin'), /has no recorded sha256 .* cannot be verified/);
  assert.deepEqual(await filesUnder(path.join(cacheDir, BUCKET, 'objects')), []);
});

test('an upload cut mid-way is retried and the stored object matches the file', async () => {
  // Multipart: one part upload is reset after 3 MB of request bytes.
  const proxy = await startCuttingProxy(server.endpoint, { afterBytes: 3 * MIB, cutTimes: 1 });
  try {
    const store = s3Store(`s3://${BUCKET}/flaky`, { endpoint: proxy.endpoint });
    const { file, hash } = await checkpointFile(2);
    const key = `checkpoints/${hash}/model.safetensors`;
    await store.put(key, file, { immutable: true });
    assert.equal(proxy.cuts, 1, 'the proxy did cut a connection');
    const direct = s3Store(`s3://${BUCKET}/flaky`);
    assert.equal(await sha256(server.objectFile(BUCKET, `flaky/${key}`)), await sha256(file));
    assert.equal(await hashSafetensorsFile(await direct.get(key)), hash);
  } finally {
    await proxy.stop();
  }

  // One PutObject (below the part size), reset after 1 MB.
  const proxy2 = await startCuttingProxy(server.endpoint, { afterBytes: 1 * MIB, cutTimes: 1 });
  try {
    const store = s3Store(`s3://${BUCKET}/flaky`, { endpoint: proxy2.endpoint });
    const file = await randomFile(3 * MIB);
    await store.put('single/blob.bin', file, { immutable: true });
    assert.equal(proxy2.cuts, 1);
    assert.equal(await sha256(server.objectFile(BUCKET, 'flaky/single/blob.bin')), await sha256(file));
  } finally {
    await proxy2.stop();
  }
});

test('a download cut mid-way is fetched again and verified; one that keeps breaking fails clearly and caches nothing', async () => {
  const file = await randomFile(9 * MIB);
  await s3Store(`s3://${BUCKET}/cutget`).put('blob.bin', file);
  const once = await startCuttingProxy(server.endpoint, { afterBytes: 4 * MIB, cutTimes: 1, direction: 'response' });
  try {
    const store = s3Store(`s3://${BUCKET}/cutget`, { endpoint: once.endpoint });
    const got = await store.get('blob.bin');
    assert.equal(once.cuts, 1, 'the proxy did cut the download');
    assert.equal(await sha256(got), await sha256(file));
  } finally {
    await once.stop();
  }
  const always = await startCuttingProxy(server.endpoint, {
    afterBytes: 4 * MIB,
    cutTimes: Infinity,
    direction: 'response',
  });
  try {
    const cacheDir = tempDir('minerflow-s3cache-');
    const store = s3Store(`s3://${BUCKET}/cutget`, { endpoint: always.endpoint, cacheDir, maxAttempts: 2 });
    await assert.rejects(
      store.get('blob.bin'),
      /^Error: S3 download of 'blob\.bin' from s3:\/\/checkpoints\/cutget .* broke off after \d+ bytes: .* \(after 2 attempts\)$/,
    );
    assert.deepEqual(await filesUnder(path.join(cacheDir, BUCKET, 'objects')), [], 'no partial download in the cache');
  } finally {
    await always.stop();
  }
});

test('bytes corrupted in transit to a server that checks no checksum are caught by the ETag check and removed', async () => {
  // s3rver ignores x-amz-checksum-sha256 (AWS would refuse with BadDigest); the ETag check still sees it.
  const proxy = await startCuttingProxy(server.endpoint, { afterBytes: 512 * 1024, cutTimes: 1, flip: true });
  try {
    const store = s3Store(`s3://${BUCKET}/transit`, { endpoint: proxy.endpoint });
    const file = await randomFile(2 * MIB);
    await assert.rejects(
      store.put('blob.bin', file, { immutable: true }),
      /server's ETag [0-9a-f]{32} matches neither the file's md5 [0-9a-f]{32} .* the object was deleted/,
    );
    assert.equal(proxy.cuts, 1, 'one byte was flipped');
    assert.equal(await store.exists('blob.bin'), false, 'no object whose recorded sha256 lies');
    await store.put('blob.bin', file, { immutable: true }); // the retry goes through
    assert.equal(await sha256(server.objectFile(BUCKET, 'transit/blob.bin')), await sha256(file));
  } finally {
    await proxy.stop();
  }
});

test('an upload that keeps failing ends in a clear error and leaves no object under the key', async () => {
  // Every connection that carries more than 1 MB is reset: part uploads never get through.
  const proxy = await startCuttingProxy(server.endpoint, { afterBytes: 1 * MIB, cutTimes: Infinity });
  try {
    const store = s3Store(`s3://${BUCKET}/broken`, { endpoint: proxy.endpoint, maxAttempts: 2 });
    const file = await randomFile(11 * MIB);
    await assert.rejects(store.put('checkpoints/x/model.safetensors', file, { immutable: true }), (err: Error) => {
      assert.match(
        err.message,
        /^S3 upload of 'checkpoints\/x\/model\.safetensors' to s3:\/\/checkpoints\/broken \(http:\/\/127\.0\.0\.1:\d+\) failed: /,
      );
      return true;
    });
    assert.ok(proxy.cuts >= 2, `the SDK retried (${proxy.cuts} cuts)`);
    assert.equal(await s3Store(`s3://${BUCKET}/broken`).exists('checkpoints/x/model.safetensors'), false);
    // One PutObject: s3rver writes it in place, so the truncated object it leaves is removed.
    await assert.rejects(
      store.put('single/blob.bin', await randomFile(3 * MIB)),
      /^Error: S3 upload of 'single\/blob\.bin' .* failed: .*ECONNRESET/,
    );
    assert.equal(
      await s3Store(`s3://${BUCKET}/broken`).exists('single/blob.bin'),
      false,
      'no half object under the key',
    );
  } finally {
    await proxy.stop();
  }
});

test('bad URIs, keys, missing buckets and unreachable servers get errors that say what is wrong', async () => {
  assert.deepEqual(parseS3Uri('s3://my-bucket/a/b/'), { bucket: 'my-bucket', prefix: 'a/b' });
  assert.deepEqual(parseS3Uri('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
  assert.throws(() => parseS3Uri('s3://'), /bucket name '' is invalid/);
  assert.throws(() => parseS3Uri('s3://My_Bucket/x'), /bucket name 'My_Bucket' is invalid/);
  assert.throws(() => parseS3Uri('s3://bucket/a//b'), /prefix 'a\/\/b' has an empty, '\.' or '\.\.' segment/);
  assert.throws(() => parseS3Uri('s3://bucket/a?versionId=1'), /not an S3 URI/);
  assert.throws(() => s3Store('s3:/bucket/x'), /not an S3 URI/);
  assert.throws(
    () => s3Store(`s3://${BUCKET}/x`, { partSizeBytes: MIB }),
    /partSizeBytes 1048576 must be a whole number of bytes, at least S3's 5 MiB minimum part size/,
  );
  assert.throws(() => s3Store(`s3://${BUCKET}/x`, { endpoint: 'not a url' }), /S3 endpoint 'not a url' is not a URL/);
  assert.throws(
    () => openStore('ftp://host/x'),
    /unsupported scheme; use a folder path, a file: URI or s3:\/\/bucket\/prefix/,
  );

  const store = s3Store(`s3://${BUCKET}/keys`);
  await assert.rejects(store.exists('../escape'), /store key '\.\.\/escape' is invalid/);
  await assert.rejects(store.put('/abs', await randomFile(10)), /store key '\/abs' is invalid/);
  await assert.rejects(store.put('ok/key', '/nonexistent/file.bin'), /cannot upload \/nonexistent\/file\.bin: ENOENT/);

  const missing = s3Store('s3://no-such-bucket/p');
  await assert.rejects(
    missing.exists('k'),
    /S3 bucket 'no-such-bucket' of checkpoint store s3:\/\/no-such-bucket\/p does not exist at http:\/\/127\.0\.0\.1:\d+/,
  );
  await assert.rejects(missing.get('k'), /does not exist/);

  const unreachable = s3Store(`s3://${BUCKET}/p`, { endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
  await assert.rejects(
    unreachable.exists('k'),
    /S3 bucket 'checkpoints' at http:\/\/127\.0\.0\.1:1 cannot be reached: .*ECONNREFUSED/,
  );

  // Half a credential pair is named, the value never shown.
  assert.throws(
    () => new S3Store(`s3://${BUCKET}`, { cacheDir: tempDir(), env: { AWS_ACCESS_KEY_ID: 'AKIASECRETVALUE' } }),
    (err: Error) =>
      /AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not/.test(err.message) &&
      !err.message.includes('AKIASECRETVALUE'),
  );
});

test('openStore wires s3:// from settings: endpoint, path style, region, credentials from the AWS env vars', async () => {
  const settings = loadSettings({
    MINERFLOW_DATA_DIR: tempDir(),
    MINERFLOW_S3_ENDPOINT: server.endpoint,
    AWS_REGION: 'eu-central-1',
    MINERFLOW_STORE: `s3://${BUCKET}/wired`,
  });
  assert.deepEqual(settings.s3, { endpoint: server.endpoint, region: 'eu-central-1', forcePathStyle: true });
  assert.equal(
    loadSettings({ MINERFLOW_S3_ENDPOINT: server.endpoint, MINERFLOW_S3_FORCE_PATH_STYLE: 'false' }).s3.forcePathStyle,
    false,
  );
  assert.throws(() => loadSettings({ MINERFLOW_S3_ENDPOINT: 'nope' }), /MINERFLOW_S3_ENDPOINT = "nope"/);

  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
  try {
    const store = openStore(settings.store, settings);
    assert.ok(store instanceof S3Store, 'store instanceof S3Store');
    assert.equal(store.uri, `s3://${BUCKET}/wired`);
    const file = await randomFile(5000);
    await store.put('a/b.bin', file, { immutable: true });
    const got = await store.get('a/b.bin');
    assert.ok(got.startsWith(path.join(settings.dataDir, 'cache', 's3')), `cached under the data dir: ${got}`);
    assert.equal(await sha256(got), await sha256(file));
  } finally {
    for (const [k, v] of [
      ['AWS_ACCESS_KEY_ID', saved.id],
      ['AWS_SECRET_ACCESS_KEY', saved.secret],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('a deleted scratch object is gone from the bucket and from the download cache', async () => {
  const store = s3Store(`s3://${BUCKET}/scratch`);
  const file = await randomFile(1024);
  await store.put('preflight/x.txt', file);
  await store.get('preflight/x.txt'); // cached now
  await store.delete('preflight/x.txt');
  assert.equal(await store.exists('preflight/x.txt'), false);
  await assert.rejects(store.get('preflight/x.txt'), /not found/);
  await store.delete('preflight/x.txt'); // absent is fine
});
