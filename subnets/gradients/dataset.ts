// A Gradients job's dataset, brought to a local file and read into rows. Where it lives follows
// from `dataset`: an http(s) URL (G.O.D's validators send presigned S3 URLs with file_format 's3',
// which the miner downloads and reads as JSON: miner/endpoints/tuning.py at 3ee725a), an s3:// URI
// (read with the S3 client), or a local path, which must lie inside the allowed folders (workflow
// input is written by anyone who reaches Temporal). 'hf' names a Hugging Face dataset: not supported.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { z } from 'zod';
import { checkInsideRoots } from '../../curation/sources';
import type { Row } from '../../finetune/format';
import type { Settings } from '../../infra/settings';
import type { FileFormatSchema } from './protocol';

/** The train request's file_format. */
export type FileFormat = z.infer<typeof FileFormatSchema>;

/** The dataset cannot be had or read (missing, refused, too big, malformed): retrying will not help. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

/** A download that failed on the way (network, timeout, 5xx, throttling): a retry may succeed. */
export class TransientDatasetError extends Error {
  override name = 'TransientDatasetError';
}

export interface FetchOptions {
  /** Folders a local dataset path must lie in (symlinks resolved): MINERFLOW_DATA_ROOTS. */
  roots: string[];
  /** Where downloads are written (temp name, renamed when complete). */
  downloadDir: string;
  /** Refuse datasets larger than this; default 512 MiB (one JavaScript string must hold the file). */
  maxBytes?: number;
  /** Whole-download deadline; default 10 minutes. */
  timeoutMs?: number;
  /** For s3:// datasets. */
  s3?: S3Client;
}

export interface DatasetFile {
  path: string;
  sha256: string;
  bytes: number;
  /** True when the file was downloaded into downloadDir (the caller may delete it). */
  downloaded: boolean;
}

const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;

/**
 * The worker's fetch options: local datasets only under MINERFLOW_DATA_ROOTS, downloads under the
 * data folder, s3:// read with the store's S3 settings (credentials from the AWS SDK's own chain).
 */
export function fetchOptionsFrom(
  settings: Pick<Settings, 'dataDir' | 'dataRoots' | 's3'>,
  limits: { maxBytes?: number; timeoutMs?: number } = {},
): FetchOptions {
  const { endpoint, region, forcePathStyle } = settings.s3;
  return {
    roots: settings.dataRoots,
    downloadDir: path.join(settings.dataDir, 'downloads'),
    s3: new S3Client({ endpoint, region, forcePathStyle, followRegionRedirects: !endpoint }),
    ...limits,
  };
}

/** Brings the dataset to a local file and hashes it. */
export async function fetchDatasetFile(dataset: string, format: FileFormat, opts: FetchOptions): Promise<DatasetFile> {
  if (format === 'hf')
    throw new DatasetError(
      `dataset '${dataset}' has file_format 'hf' (a Hugging Face dataset name): not supported; the hub adapter reads model repos only — send the data as json or csv`,
    );
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (/^https?:\/\//i.test(dataset)) return download(dataset, opts, maxBytes);
  if (/^s3:\/\//i.test(dataset)) return downloadS3(dataset, opts, maxBytes);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dataset))
    throw new DatasetError(`dataset '${shown(dataset)}': unsupported scheme; use http(s)://, s3:// or a local path`);
  const real = await checkInsideRoots(dataset, opts.roots, 'dataset');
  const st = await fs.stat(real).catch(() => undefined);
  if (!st?.isFile()) throw new DatasetError(`dataset '${dataset}' is not a file`);
  if (st.size > maxBytes)
    throw new DatasetError(`dataset '${dataset}' is ${st.size} bytes, over the ${maxBytes} limit`);
  const sha256 = createHash('sha256')
    .update(await fs.readFile(real))
    .digest('hex');
  return { path: real, sha256, bytes: st.size, downloaded: false };
}

async function download(url: string, opts: FetchOptions, maxBytes: number): Promise<DatasetFile> {
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 600_000);
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (e) {
    throw new TransientDatasetError(`dataset ${shown(url)}: download failed: ${(e as Error).message}`);
  }
  if (!res.ok || !res.body) {
    // 408, 429 and 5xx may pass; any other status will not.
    const transient = res.status === 408 || res.status === 429 || res.status >= 500;
    const msg = `dataset ${shown(url)}: HTTP ${res.status} ${res.statusText}`;
    throw transient ? new TransientDatasetError(msg) : new DatasetError(msg);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body.cancel();
    throw new DatasetError(`dataset ${shown(url)} is ${declared} bytes, over the ${maxBytes} limit`);
  }
  return save(Readable.fromWeb(res.body as never), opts.downloadDir, maxBytes, shown(url));
}

async function downloadS3(uri: string, opts: FetchOptions, maxBytes: number): Promise<DatasetFile> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/i.exec(uri);
  if (!m) throw new DatasetError(`dataset '${uri}': expected s3://bucket/key`);
  if (!opts.s3) throw new DatasetError(`dataset '${uri}': no S3 client configured for s3:// datasets`);
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 600_000);
  let body: Readable;
  try {
    const out = await opts.s3.send(new GetObjectCommand({ Bucket: m[1], Key: m[2] }), { abortSignal: signal });
    if ((out.ContentLength ?? 0) > maxBytes)
      throw new DatasetError(`dataset '${uri}' is ${out.ContentLength} bytes, over the ${maxBytes} limit`);
    body = out.Body as Readable;
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    const msg = `dataset '${uri}': ${(e as Error).name}: ${(e as Error).message}`;
    const permanent = ['NoSuchKey', 'NoSuchBucket', 'AccessDenied', 'NotFound'].includes((e as Error).name);
    throw permanent ? new DatasetError(msg) : new TransientDatasetError(msg);
  }
  return save(body, opts.downloadDir, maxBytes, uri);
}

/** Streams to a temp file, hashing and counting; renamed to its digest only when complete. */
async function save(body: Readable, dir: string, maxBytes: number, where: string): Promise<DatasetFile> {
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${randomUUID()}.part`);
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) return done(new DatasetError(`dataset ${where} is over the ${maxBytes}-byte limit`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(body, meter, createWriteStream(tmp));
  } catch (e) {
    await fs.rm(tmp, { force: true });
    if (e instanceof DatasetError) throw e;
    throw new TransientDatasetError(`dataset ${where}: download failed: ${(e as Error).message}`);
  }
  const sha256 = hash.digest('hex');
  // Unique per download: a concurrent preparation of the same data deletes only its own copy.
  const file = path.join(dir, `${sha256}-${randomUUID()}`);
  await fs.rename(tmp, file);
  return { path: file, sha256, bytes, downloaded: true };
}

/** A URL without its query (presigned URLs carry credentials there) for messages. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.replace(/\?.*$/, '');
  }
}

// ---------------------------------------------------------------- parsing

/** The rows of a dataset file: 'json' and 's3' are a JSON array of objects or JSON lines; 'csv' has a header row. */
export function parseDataset(text: string, format: FileFormat, where: string): Row[] {
  text = text.replace(/^\uFEFF/, '');
  if (format === 'csv') return csvRows(text, where);
  if (format === 'hf') throw new DatasetError(`${where}: file_format 'hf' is not a file format`);
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new DatasetError(`${where}: not valid JSON: ${(e as Error).message}`);
    }
    return (data as unknown[]).map((r, i) => asRow(r, `${where}: element ${i}`));
  }
  const rows: Row[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    let v: unknown;
    try {
      v = JSON.parse(lines[i]);
    } catch (e) {
      throw new DatasetError(
        `${where}: line ${i + 1} is not JSON (expected a JSON array or one object per line): ${(e as Error).message}`,
      );
    }
    rows.push(asRow(v, `${where}: line ${i + 1}`));
  }
  return rows;
}

function asRow(v: unknown, where: string): Row {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DatasetError(`${where} is not a JSON object`);
  return v as Row;
}

function csvRows(text: string, where: string): Row[] {
  const records = parseCsv(text, where);
  if (records.length === 0) throw new DatasetError(`${where}: empty CSV (no header row)`);
  const [header, ...body] = records;
  const seen = new Set<string>();
  for (const h of header) {
    if (seen.has(h)) throw new DatasetError(`${where}: header names column '${h}' twice`);
    seen.add(h);
  }
  return body.map((rec, i) => {
    if (rec.length !== header.length)
      throw new DatasetError(`${where}: record ${i + 1} has ${rec.length} fields, the header ${header.length}`);
    // An empty cell is a missing value, as pandas and Hugging Face datasets read CSV (NaN / None).
    return Object.fromEntries(header.map((h, j) => [h, rec[j] === '' ? null : rec[j]]));
  });
}

/**
 * RFC 4180: records end in CRLF or LF; fields separated by commas; a field in double quotes may
 * hold commas, line breaks and "" (one quote). A final empty line is not a record.
 */
export function parseCsv(text: string, where = 'CSV'): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quotedField = false; // the current field was quoted (so an empty one still counts at the end)
  let line = 1;
  let i = 0;
  const endField = () => {
    record.push(field);
    field = '';
    quotedField = false;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '"' && field === '' && !quotedField) {
      // quoted field
      const startLine = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new DatasetError(`${where}: line ${startLine}: quoted field is never closed`);
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && !(next === '\r' && text[i + 1] === '\n'))
        throw new DatasetError(
          `${where}: line ${line}: text after a closing quote; write "" for a quote inside a field`,
        );
      quotedField = true;
      if (next === undefined) break;
      continue;
    }
    if (c === ',') {
      endField();
      i++;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      endField();
      records.push(record);
      record = [];
      i += c === '\n' ? 1 : 2;
      line++;
    } else if (c === '"') {
      throw new DatasetError(`${where}: line ${line}: a quote inside an unquoted field; quote the field and write ""`);
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || quotedField || record.length > 0) {
    endField();
    records.push(record);
  }
  return records;
}
