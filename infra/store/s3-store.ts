// S3 checkpoint store: AWS S3 or any S3-compatible server, at s3://bucket/prefix.
//
// Every object carries the SHA-256 of its bytes in its metadata (x-amz-meta-sha256). Uploads send
// that SHA-256 to the server (x-amz-checksum-sha256, per part for multipart; AWS rejects a mismatch)
// and are then checked against what the server stored (its ETag against our MD5s, its recorded
// digest and size). Downloads go to a local cache, are hashed while streaming and renamed into place
// only when the digest matches, so a corrupt object never reaches a reader or stays in the cache.
//
// The SDK's default since 3.7xx (requestChecksumCalculation WHEN_SUPPORTED) sends a CRC32 trailer in
// aws-chunked framing for streamed bodies; servers that predate it (s3rver, older MinIO/Ceph) store
// the framing as object bytes. We use WHEN_REQUIRED and ask for SHA-256 explicitly: with the Buffer
// bodies lib-storage sends, the checksum travels as a plain header that every server accepts.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
  type HeadObjectCommandOutput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ImmutableObjectError, ObjectNotFoundError, type CheckpointStore } from './store';
import { checkStoreKey } from './fs-store';

/** The metadata field holding the object's SHA-256 (hex); S3 sends it as x-amz-meta-sha256. */
export const SHA256_METADATA = 'sha256';
const MIB = 1024 * 1024;

export interface S3StoreOptions {
  /** Local folder for verified downloads (e.g. <data dir>/cache/s3). */
  cacheDir: string;
  /** An S3-compatible server's URL (MinIO, Ceph, R2, s3rver); unset means AWS S3. */
  endpoint?: string;
  region?: string;
  /** Path-style URLs (http://host/bucket/key), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Explicit credentials; unset means the SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size, at least 5 MiB (S3's minimum); files up to this size go in one PutObject. */
  partSizeBytes?: number;
  /** Parts in flight at once: memory use is about partSizeBytes × queueSize. */
  queueSize?: number;
  /** Attempts per request (a dropped connection, a 5xx, throttling are retried; so is a download cut mid-body). */
  maxAttempts?: number;
  /**
   * Compare the ETag the server returns with our MD5s. True for AWS (SSE-S3) and S3-compatible
   * servers; turn off for SSE-KMS / SSE-C buckets, whose ETags are not MD5s.
   */
  verifyEtag?: boolean;
  /** Environment, for the credentials check. */
  env?: NodeJS.ProcessEnv;
}

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket root. */
  prefix: string;
}

/** Parses s3://bucket[/prefix]; errors name what is wrong. */
export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/.exec(uri);
  if (!m)
    throw new Error(
      `checkpoint store '${uri}': not an S3 URI; expected s3://bucket or s3://bucket/prefix (no query or fragment)`,
    );
  const [, bucket, rawPrefix = ''] = m;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new Error(
      `checkpoint store '${uri}': bucket name '${bucket}' is invalid; S3 bucket names are 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit`,
    );
  }
  const prefix = rawPrefix.replace(/\/+$/, '');
  if (prefix && prefix.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`checkpoint store '${uri}': prefix '${prefix}' has an empty, '.' or '..' segment`);
  }
  return { bucket, prefix };
}

export class S3Store implements CheckpointStore {
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly cacheDir: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly verifyEtag: boolean;
  private readonly maxAttempts: number;
  private readonly where: string;
  private bucketChecked?: Promise<void>;

  constructor(uri: string, opts: S3StoreOptions) {
    const loc = parseS3Uri(uri);
    this.bucket = loc.bucket;
    this.prefix = loc.prefix;
    this.uri = `s3://${loc.bucket}${loc.prefix ? `/${loc.prefix}` : ''}`;
    this.cacheDir = path.resolve(opts.cacheDir);
    this.partSize = opts.partSizeBytes ?? 16 * MIB;
    if (!Number.isInteger(this.partSize) || this.partSize < 5 * MIB) {
      throw new Error(
        `S3 store ${this.uri}: partSizeBytes ${opts.partSizeBytes} must be a whole number of bytes, at least S3's 5 MiB minimum part size`,
      );
    }
    this.queueSize = opts.queueSize ?? 4;
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1)
      throw new Error(`S3 store ${this.uri}: queueSize ${opts.queueSize} must be an integer ≥ 1`);
    this.verifyEtag = opts.verifyEtag ?? true;
    this.maxAttempts = opts.maxAttempts ?? 5;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1)
      throw new Error(`S3 store ${this.uri}: maxAttempts ${opts.maxAttempts} must be an integer ≥ 1`);
    if (!opts.credentials) checkCredentialEnv(opts.env ?? process.env);
    let endpoint: string | undefined;
    if (opts.endpoint) {
      let url: URL;
      try {
        url = new URL(opts.endpoint);
      } catch {
        throw new Error(`S3 endpoint '${redactUrl(opts.endpoint)}' is not a URL; expected e.g. http://127.0.0.1:9000`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        throw new Error(`S3 endpoint '${redactUrl(opts.endpoint)}' must be http: or https:`);
      endpoint = opts.endpoint;
    }
    const region = opts.region ?? 'us-east-1';
    this.where = endpoint ? redactUrl(endpoint) : `AWS S3 (${region})`;
    const config: S3ClientConfig = {
      region,
      endpoint,
      forcePathStyle: opts.forcePathStyle ?? false,
      credentials: opts.credentials,
      maxAttempts: this.maxAttempts,
      followRegionRedirects: !endpoint,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    this.client = new S3Client(config);
  }

  /** The full S3 key of a store key; refuses keys that would leave the prefix. */
  objectKey(key: string): string {
    checkStoreKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async put(key: string, localFile: string, opts: { immutable?: boolean } = {}): Promise<void> {
    const s3Key = this.objectKey(key);
    await this.ensureBucket();
    const local = await digestFile(localFile, this.partSize);
    if (opts.immutable) {
      const head = await this.head(s3Key);
      if (head) return this.acceptExisting(key, head, local);
    }
    let result: { ETag?: string };
    const body = createReadStream(localFile);
    try {
      const upload = new Upload({
        client: this.client,
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false, // a failed multipart upload is aborted: no orphaned parts, nothing under the key
        params: {
          Bucket: this.bucket,
          Key: s3Key,
          Body: body,
          ContentLength: local.size,
          ContentType: 'application/octet-stream',
          Metadata: { [SHA256_METADATA]: local.sha256 },
          ChecksumAlgorithm: 'SHA256',
          // A conditional write closes the race between two writers of one immutable key (AWS and
          // recent S3-compatible servers honour it; older ones ignore it, and the check above stands).
          ...(opts.immutable ? { IfNoneMatch: '*' } : {}),
        },
      });
      result = await upload.done();
    } catch (err) {
      if (opts.immutable && isPreconditionFailed(err)) {
        // Someone (possibly our own earlier attempt whose response was lost) wrote it first.
        const head = await this.head(s3Key);
        if (head) return this.acceptExisting(key, head, local);
      }
      await this.removeIncomplete(s3Key);
      throw new Error(`S3 upload of '${key}' to ${this.uri} (${this.where}) failed: ${describe(err)}`, { cause: err });
    } finally {
      body.destroy(); // an aborted upload leaves the stream unread: close the file
    }
    await this.verifyUpload(key, s3Key, local, result.ETag);
  }

  async get(key: string): Promise<string> {
    const s3Key = this.objectKey(key);
    await this.ensureBucket();
    const head = await this.head(s3Key);
    if (!head) throw new ObjectNotFoundError(`store object '${key}' not found in ${this.uri}`);
    const recorded = recordedSha256(head);
    if (!recorded) throw this.unverifiable(key);
    const file = path.join(this.cacheDir, this.bucket, 'objects', s3Key);
    const stamp = path.join(this.cacheDir, this.bucket, 'verified', `${s3Key}.json`);
    if (await isVerifiedCopy(file, stamp, recorded, head.ContentLength)) return file;

    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.mkdir(path.dirname(stamp), { recursive: true });
    // The SDK retries a failed request, but not a body stream cut after the response began.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.download(key, s3Key, file, stamp);
      } catch (err) {
        if (!(err instanceof BodyStreamError) || attempt >= this.maxAttempts) {
          throw err instanceof BodyStreamError ? new Error(`${err.message} (after ${attempt} attempts)`) : err;
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (attempt - 1)));
      }
    }
  }

  /** One GET into a temp file beside the cache entry; renamed into place only once its digest checks out. */
  private async download(key: string, s3Key: string, file: string, stamp: string): Promise<string> {
    const tmp = `${file}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      const res = await this.client
        .send(new GetObjectCommand({ Bucket: this.bucket, Key: s3Key }))
        .catch((err: unknown) => {
          if (isNotFound(err)) throw new ObjectNotFoundError(`store object '${key}' not found in ${this.uri}`);
          throw new Error(`S3 download of '${key}' from ${this.uri} (${this.where}) failed: ${describe(err)}`);
        });
      // The bytes are checked against the digest recorded with this very response (not the earlier HEAD),
      // so an object replaced in between is still verified against its own digest.
      const expected = res.Metadata?.[SHA256_METADATA];
      if (!expected || !/^[0-9a-f]{64}$/.test(expected)) throw this.unverifiable(key);
      if (!res.Body) throw new Error(`S3 download of '${key}' from ${this.uri}: the response has no body`);
      const hash = createHash('sha256');
      let size = 0;
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      });
      const out = createWriteStream(tmp);
      await pipeline(res.Body as Readable, hashing, out).catch((err: unknown) => {
        // A local disk error (it names our temp file) is not the network's fault: not retried.
        if ((err as NodeJS.ErrnoException)?.path === tmp)
          throw new Error(`writing the download of '${key}' to ${tmp} failed: ${describe(err)}`);
        throw new BodyStreamError(
          `S3 download of '${key}' from ${this.uri} (${this.where}) broke off after ${size} bytes: ${describe(err)}`,
        );
      });
      const actual = hash.digest('hex');
      if (actual !== expected || (res.ContentLength !== undefined && size !== res.ContentLength)) {
        throw new Error(
          `store object '${key}' in ${this.uri} is corrupt: its recorded sha256 is ${expected}, the downloaded ${size} bytes hash to ${actual}` +
            (res.ContentLength !== undefined && size !== res.ContentLength
              ? ` (expected ${res.ContentLength} bytes)`
              : '') +
            '; the download was discarded',
        );
      }
      const handle = await fs.open(tmp, 'r+');
      await handle.sync();
      await handle.close();
      await fs.rm(stamp, { force: true }); // the stamp never vouches for bytes it did not see
      await fs.rename(tmp, file);
      const { mtimeMs } = await fs.stat(file);
      await writeAtomic(stamp, JSON.stringify({ sha256: actual, size, mtimeMs }));
      return file;
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    const s3Key = this.objectKey(key);
    await this.ensureBucket();
    return (await this.head(s3Key)) !== null;
  }

  async delete(key: string): Promise<void> {
    const s3Key = this.objectKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: s3Key }));
    // Its cached copy goes too, or get() would keep answering from the cache.
    await fs.rm(path.join(this.cacheDir, this.bucket, 'objects', s3Key), { force: true });
    await fs.rm(path.join(this.cacheDir, this.bucket, 'verified', `${s3Key}.json`), { force: true });
  }

  /** HeadObject, null when absent. A missing bucket also answers 404 to HEAD, hence ensureBucket first. */
  private async head(s3Key: string): Promise<HeadObjectCommandOutput | null> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: s3Key }));
    } catch (err) {
      if (isNotFound(err)) return null;
      throw new Error(
        `S3 HeadObject of '${s3Key}' in bucket '${this.bucket}' (${this.where}) failed: ${describe(err)}`,
        { cause: err },
      );
    }
  }

  private ensureBucket(): Promise<void> {
    this.bucketChecked ??= this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).then(
      () => undefined,
      (err: unknown) => {
        this.bucketChecked = undefined; // a later call asks again (the bucket may be created, the network may return)
        const status = httpStatus(err);
        if (status === 404)
          throw new Error(
            `S3 bucket '${this.bucket}' of checkpoint store ${this.uri} does not exist at ${this.where}; create it or fix MINERFLOW_STORE`,
          );
        if (status === 403 || status === 401) {
          throw new Error(
            `S3 bucket '${this.bucket}' at ${this.where}: access denied; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy`,
          );
        }
        if (status === 301 && !this.where.startsWith('AWS'))
          throw new Error(`S3 bucket '${this.bucket}' at ${this.where} is in another region; set AWS_REGION`);
        throw new Error(`S3 bucket '${this.bucket}' at ${this.where} cannot be reached: ${describe(err)}`);
      },
    );
    return this.bucketChecked;
  }

  /** An immutable key already holds an object: fine if it is ours byte for byte (a retry), refused otherwise. */
  private acceptExisting(key: string, head: HeadObjectCommandOutput, local: LocalDigests): void {
    const recorded = recordedSha256(head);
    if (recorded === local.sha256 && head.ContentLength === local.size) return;
    throw new ImmutableObjectError(
      `store object '${key}' already exists in ${this.uri} with different content (stored sha256 ${recorded ?? 'not recorded'}, ${head.ContentLength} bytes; ` +
        `this file sha256 ${local.sha256}, ${local.size} bytes); committed checkpoints are never overwritten`,
    );
  }

  /** After an upload: the server's ETag must match our MD5s, and the stored digest and size ours. */
  private async verifyUpload(key: string, s3Key: string, local: LocalDigests, etag: string | undefined): Promise<void> {
    if (this.verifyEtag && etag) {
      const got = etag.replace(/"/g, '');
      // AWS: a multipart ETag is md5(concatenated part md5s)-<parts>; s3rver and others give the whole-object md5.
      const ok = got === local.md5 || got === local.multipartEtag;
      if (!ok) {
        // The stored bytes are not what our digest describes (the file changed while uploading?): an object
        // whose recorded sha256 lies must not stay, or a retry of the same file would be accepted over it.
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: s3Key })).catch(() => undefined);
        throw new Error(
          `S3 upload of '${key}' to ${this.uri}: the server's ETag ${got} matches neither the file's md5 ${local.md5} nor its multipart ETag ${local.multipartEtag}; ` +
            'the stored bytes differ from the file (changed while uploading?), so the object was deleted (if the bucket uses SSE-KMS or SSE-C, whose ETags are not md5s, disable verifyEtag)',
        );
      }
    }
    const head = await this.head(s3Key);
    if (!head) throw new Error(`S3 upload of '${key}' to ${this.uri} reported success, but the object is not there`);
    const recorded = recordedSha256(head);
    if (recorded !== local.sha256 || head.ContentLength !== local.size) {
      throw new Error(
        `S3 upload of '${key}' to ${this.uri}: stored object has sha256 ${recorded ?? 'not recorded'} and ${head.ContentLength} bytes, the file sha256 ${local.sha256} and ${local.size} bytes`,
      );
    }
  }

  /**
   * After a failed upload. AWS never shows a partial object, but some S3-compatible servers (s3rver)
   * write a single PutObject in place, leaving a truncated object under the key when the connection
   * drops for good. Such an object has no recorded digest (metadata comes last), so nothing complete
   * is ever removed here; readers would refuse it anyway.
   */
  private async removeIncomplete(s3Key: string): Promise<void> {
    try {
      const head = await this.head(s3Key);
      if (head && !recordedSha256(head))
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: s3Key }));
    } catch {
      // best effort: the upload error that brought us here is the one to report
    }
  }

  private unverifiable(key: string): Error {
    return new Error(
      `store object '${key}' in ${this.uri} has no recorded sha256 (x-amz-meta-${SHA256_METADATA}); it was not written by minerflow and cannot be verified`,
    );
  }
}

/** The response body broke off mid-way (a dropped connection): worth another GET. */
class BodyStreamError extends Error {
  override name = 'BodyStreamError';
}

interface LocalDigests {
  size: number;
  sha256: string;
  md5: string;
  /** The ETag AWS gives a multipart upload with our part size; equals md5 semantics for one part. */
  multipartEtag: string;
}

/** One read of the file: SHA-256, MD5 and the per-part MD5s lib-storage's split will produce. */
async function digestFile(file: string, partSize: number): Promise<LocalDigests> {
  const stat = await fs.stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot upload ${file}: ${err.code ?? err.message}`);
  });
  if (!stat.isFile()) throw new Error(`cannot upload ${file}: not a regular file`);
  const sha = createHash('sha256');
  const md5 = createHash('md5');
  const partMd5s: Buffer[] = [];
  let part = createHash('md5');
  let inPart = 0;
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: MIB }) as AsyncIterable<Buffer>) {
    sha.update(chunk);
    md5.update(chunk);
    size += chunk.length;
    for (let pos = 0; pos < chunk.length;) {
      const take = Math.min(partSize - inPart, chunk.length - pos);
      part.update(chunk.subarray(pos, pos + take));
      inPart += take;
      pos += take;
      if (inPart === partSize) {
        partMd5s.push(part.digest());
        part = createHash('md5');
        inPart = 0;
      }
    }
  }
  if (inPart > 0) partMd5s.push(part.digest());
  const md5Hex = md5.digest('hex');
  // lib-storage sends a file of at most one part size in a single PutObject (ETag = md5).
  const multipartEtag =
    size <= partSize ? md5Hex : `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${partMd5s.length}`;
  return { size, sha256: sha.digest('hex'), md5: md5Hex, multipartEtag };
}

/** The cached file is the one we verified (same digest as the object now, untouched since: size and mtime). */
async function isVerifiedCopy(file: string, stamp: string, sha256: string, size: number | undefined): Promise<boolean> {
  try {
    const seen = JSON.parse(await fs.readFile(stamp, 'utf8')) as { sha256?: string; size?: number; mtimeMs?: number };
    const st = await fs.stat(file);
    return (
      seen.sha256 === sha256 &&
      seen.size === st.size &&
      seen.mtimeMs === st.mtimeMs &&
      (size === undefined || size === st.size)
    );
  } catch {
    return false;
  }
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${randomUUID()}`;
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
}

function recordedSha256(head: HeadObjectCommandOutput): string | undefined {
  const v = head.Metadata?.[SHA256_METADATA];
  return v && /^[0-9a-f]{64}$/.test(v) ? v : undefined;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as Error)?.name;
  return name === 'NotFound' || name === 'NoSuchKey' || httpStatus(err) === 404;
}

function isPreconditionFailed(err: unknown): boolean {
  const name = (err as Error)?.name;
  return (
    name === 'PreconditionFailed' ||
    name === 'ConditionalRequestConflict' ||
    httpStatus(err) === 412 ||
    httpStatus(err) === 409
  );
}

/** An SDK error as "<name>: <message> (HTTP <status>)"; S3 error messages hold no secrets. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const status = httpStatus(err);
  const code = (err as NodeJS.ErrnoException).code;
  return `${err.name}: ${err.message || '(no message)'}${status ? ` (HTTP ${status})` : ''}${code && !err.message.includes(code) ? ` [${code}]` : ''}`;
}

/** Drops user:password from a URL before it goes into a message. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//');
}

/** Half a credential pair makes the SDK fail later with a vague message; say which variable is missing. */
function checkCredentialEnv(env: NodeJS.ProcessEnv): void {
  const id = !!env.AWS_ACCESS_KEY_ID;
  const secret = !!env.AWS_SECRET_ACCESS_KEY;
  if (id && !secret)
    throw new Error(
      'AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both, or neither to use a profile or instance role',
    );
  if (secret && !id)
    throw new Error(
      'AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both, or neither to use a profile or instance role',
    );
}
