// A local Hugging Face Hub for the demo and the tests, as the devnet is for the chain: the part of the
// Hub's HTTP API that @huggingface/hub (JS) and Python huggingface_hub call to create a model repo,
// commit files (inline base64 or through the LFS batch API), resolve a file at a branch or a full or
// short commit sha, and read model info, paths info and refs.
//
// Repos, commits and objects live on disk (local-hub-store.ts). Writes need `Authorization: Bearer …`
// (the configured token, or any token when none is set); reads are public. LFS uploads go to a
// one-time upload link, as the real Hub's presigned S3 URLs do.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  checkRepoPath,
  gitBlobSha,
  HubHttpError,
  HubStorage,
  lfsPointer,
  parseLfsPatterns,
  type RepoMeta,
} from './local-hub-store';

export interface LocalHubOptions {
  dir: string;
  port?: number; // 0 (default): a free port
  host?: string; // loopback by default
  /** The one token that may write; unset: any Bearer token may. */
  token?: string;
}

export interface LocalHub {
  url: string;
  close(): Promise<void>;
}

/** Files above this size go through LFS even when no .gitattributes pattern names them (the Hub's rule). */
export const LFS_SIZE_THRESHOLD = 10 * 1024 * 1024;
const MAX_JSON_BODY = 256 * 1024 * 1024; // inline base64 files ride in the commit body
const UPLOAD_LINK_TTL_S = 3600;

export async function startLocalHub(opts: LocalHubOptions): Promise<LocalHub> {
  const hub = new HubStorage(path.resolve(opts.dir));
  await hub.init();
  const uploads = new Map<string, { oid: string; size: number; expires: number }>();
  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => sendError(res, err));
  });

  function baseUrl(req: IncomingMessage): string {
    return `http://${req.headers.host ?? `${opts.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`}`;
  }

  function requireWrite(req: IncomingMessage): void {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const ok = m && (opts.token === undefined || safeEqual(m[1], opts.token));
    // Python huggingface_hub reports this exact message as a credentials problem (not "repo not found").
    if (!ok) throw new HubHttpError(401, 'Invalid credentials in Authorization header');
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const parts = url.pathname.split('/').slice(1).map(decodeSegment);
    const method = req.method ?? 'GET';
    const base = baseUrl(req);

    if (method === 'POST' && url.pathname === '/api/repos/create') {
      requireWrite(req);
      const body = (await readJson(req)) as { name?: unknown; organization?: unknown; type?: unknown };
      if (body.type !== undefined && body.type !== null && body.type !== 'model')
        throw new HubHttpError(400, `this local hub serves model repos only, not type '${String(body.type)}'`);
      const ns = typeof body.organization === 'string' && body.organization ? body.organization : 'local';
      const id = `${ns}/${String(body.name)}`;
      const created = await hub.createRepo(ns, String(body.name));
      if (!created) return sendJson(res, 409, { error: 'You already created this model repo', url: `${base}/${id}` });
      return sendJson(res, 200, { url: `${base}/${id}`, name: id, id: created.internalId });
    }
    if (method === 'GET' && url.pathname === '/api/whoami-v2') {
      requireWrite(req);
      return sendJson(res, 200, {
        type: 'user',
        name: 'local',
        fullname: 'local hub user',
        orgs: [],
        auth: { type: 'access_token', accessToken: { displayName: 'local', role: 'write' } },
      });
    }
    if (parts[0] === 'api' && parts[1] === 'models' && parts.length >= 4) {
      const repo = await hub.repo(parts[2], parts[3]);
      const [action, rev, ...rest] = parts.slice(4);
      if (method === 'GET' && action === undefined) return sendJson(res, 200, await modelInfo(repo, 'main', url));
      if (method === 'GET' && action === 'revision' && rev !== undefined && rest.length === 0)
        return sendJson(res, 200, await modelInfo(repo, rev, url));
      if (method === 'GET' && action === 'refs' && rev === undefined) {
        const refs = await hub.refs(repo.id);
        return sendJson(res, 200, {
          branches: Object.entries(refs).map(([name, sha]) => ({ name, ref: `refs/heads/${name}`, targetCommit: sha })),
          tags: [],
          converts: [],
          ...(url.searchParams.get('include_prs') ? { pullRequests: [] } : {}),
        });
      }
      if (method === 'POST' && action === 'paths-info' && rev !== undefined)
        return sendJson(res, 200, await pathsInfo(repo, rev, await readPaths(req)));
      if (method === 'POST' && action === 'preupload' && rev !== undefined) {
        requireWrite(req);
        return sendJson(res, 200, await preupload(repo, rev, await readJson(req)));
      }
      if (method === 'POST' && action === 'commit' && rev !== undefined) {
        requireWrite(req);
        if (url.searchParams.get('create_pr'))
          throw new HubHttpError(400, 'this local hub does not open pull requests');
        const lines = (await readBody(req, MAX_JSON_BODY)).toString('utf8');
        const sha = await hub.commit(repo.id, rev, parseNdjson(lines));
        return sendJson(res, 200, {
          success: true,
          commitOid: sha,
          commitUrl: `${base}/${repo.id}/commit/${sha}`,
          hookOutput: '',
          pullRequestUrl: null,
        });
      }
    }
    if (
      method === 'POST' &&
      parts.length === 6 &&
      parts[1].endsWith('.git') &&
      parts.slice(2).join('/') === 'info/lfs/objects/batch'
    ) {
      const repo = await hub.repo(parts[0], parts[1].slice(0, -'.git'.length));
      requireWrite(req);
      const body = (await readJson(req)) as { operation?: unknown; objects?: unknown };
      if (body.operation !== 'upload')
        throw new HubHttpError(400, `LFS batch: operation '${String(body.operation)}' is not served; only 'upload'`);
      if (!Array.isArray(body.objects)) throw new HubHttpError(400, 'LFS batch: objects must be a list');
      const objects = await Promise.all(
        (body.objects as { oid?: unknown; size?: unknown }[]).map(async ({ oid, size }) => {
          if (
            typeof oid !== 'string' ||
            !/^[0-9a-f]{64}$/.test(oid) ||
            !Number.isSafeInteger(size) ||
            (size as number) < 0
          )
            throw new HubHttpError(
              400,
              `LFS batch (${repo.id}): object ${JSON.stringify({ oid, size })} needs a sha256 oid and a size`,
            );
          if ((await hub.objectSize(oid)) === size) return { oid, size }; // already stored: no upload action
          const link = randomBytes(24).toString('hex');
          uploads.set(link, { oid, size: size as number, expires: Date.now() + UPLOAD_LINK_TTL_S * 1000 });
          return {
            oid,
            size,
            authenticated: true,
            actions: { upload: { href: `${base}/lfs-upload/${link}`, expires_in: UPLOAD_LINK_TTL_S } },
          };
        }),
      );
      return sendJson(res, 200, { transfer: 'basic', objects }, 'application/vnd.git-lfs+json');
    }
    if (method === 'PUT' && parts[0] === 'lfs-upload' && parts.length === 2) {
      const link = uploads.get(parts[1]);
      if (!link || link.expires < Date.now()) throw new HubHttpError(403, 'this upload link is unknown or has expired');
      await hub.putObject(req, link.oid, link.size);
      uploads.delete(parts[1]);
      res.writeHead(200, { ETag: `"${link.oid}"`, 'Content-Length': 0 });
      return void res.end();
    }
    if ((method === 'GET' || method === 'HEAD') && parts[0] === 'lfs-objects' && parts.length === 2) {
      // The stand-in for the Hub's CDN: an LFS object by its sha256.
      const size = /^[0-9a-f]{64}$/.test(parts[1]) ? await hub.objectSize(parts[1]) : undefined;
      if (size === undefined) throw new HubHttpError(404, `LFS object ${parts[1]} not found`);
      return sendObject(req, res, hub.objectPath(parts[1]), size, { ETag: `"${parts[1]}"` });
    }
    if ((method === 'GET' || method === 'HEAD') && parts[2] === 'resolve' && parts.length >= 5) {
      const repo = await hub.repo(parts[0], parts[1]);
      const commit = await hub.commitAt(repo.id, parts[3]);
      const filename = parts.slice(4).join('/');
      const entry = commit.files[filename];
      const common = { 'X-Repo-Commit': commit.id };
      if (!entry)
        throw new HubHttpError(
          404,
          `${filename} does not exist in ${repo.id} at ${commit.id}`,
          'EntryNotFound',
          common,
        );
      if (entry.lfs) {
        // As the Hub does: a redirect to the object store, carrying the object's sha256 and size.
        res.writeHead(302, {
          ...common,
          Location: `${base}/lfs-objects/${entry.sha256}`,
          'X-Linked-Etag': `"${entry.sha256}"`,
          'X-Linked-Size': String(entry.size),
          ETag: `"${gitBlobSha(Buffer.from(lfsPointer(entry)))}"`,
          'Content-Length': 0,
        });
        return void res.end();
      }
      const file = hub.objectPath(entry.sha256);
      return sendObject(req, res, file, entry.size, { ...common, ETag: `"${await hub.gitBlobShaOf(entry)}"` });
    }
    throw new HubHttpError(404, `${method} ${url.pathname} is not served by this local hub`);
  }

  async function modelInfo(repo: RepoMeta, rev: string, url: URL): Promise<unknown> {
    const commit = await hub.commitAt(repo.id, rev);
    const blobs = ['1', 'true', 'True'].includes(url.searchParams.get('blobs') ?? '');
    const siblings = await Promise.all(
      Object.entries(commit.files).map(async ([rfilename, e]) =>
        blobs
          ? {
              rfilename,
              size: e.size,
              blobId: await hub.gitBlobShaOf(e),
              ...(e.lfs ? { lfs: { sha256: e.sha256, size: e.size, pointerSize: lfsPointer(e).length } } : {}),
            }
          : { rfilename },
      ),
    );
    return {
      _id: repo.internalId,
      id: repo.id,
      modelId: repo.id,
      author: repo.id.split('/')[0],
      sha: commit.id,
      lastModified: commit.date,
      createdAt: repo.createdAt,
      private: false,
      disabled: false,
      gated: false,
      downloads: 0,
      likes: 0,
      tags: [],
      siblings,
    };
  }

  async function pathsInfo(repo: RepoMeta, rev: string, paths: string[]): Promise<unknown> {
    const commit = await hub.commitAt(repo.id, rev);
    const out: unknown[] = [];
    for (const p of paths) {
      const e = commit.files[p];
      if (!e) continue; // the Hub leaves out paths that do not exist
      out.push({
        type: 'file',
        path: p,
        size: e.size,
        oid: await hub.gitBlobShaOf(e),
        ...(e.lfs ? { lfs: { oid: e.sha256, size: e.size, pointerSize: lfsPointer(e).length } } : {}),
      });
    }
    return out;
  }

  async function preupload(repo: RepoMeta, rev: string, body: unknown): Promise<unknown> {
    const { files, gitAttributes } = body as { files?: unknown; gitAttributes?: unknown };
    if (!Array.isArray(files)) throw new HubHttpError(400, 'preupload: files must be a list');
    const commit = await hub.commitAt(repo.id, rev);
    const attributes =
      typeof gitAttributes === 'string' ? gitAttributes : await hub.readText(commit.files['.gitattributes']);
    const lfsPatterns = parseLfsPatterns(attributes ?? '');
    return {
      files: await Promise.all(
        (files as { path?: unknown; size?: unknown }[]).map(async ({ path: p, size }) => {
          const filePath = checkRepoPath(p);
          if (!Number.isSafeInteger(size))
            throw new HubHttpError(400, `preupload: ${filePath}: size must be an integer`);
          const lfs = (size as number) > LFS_SIZE_THRESHOLD || lfsPatterns.some((re) => re.test(filePath));
          const existing = commit.files[filePath];
          // Python compares this oid with its own (sha256 for LFS, git blob sha1 otherwise) to skip unchanged files.
          const oid = existing ? (existing.lfs ? existing.sha256 : await hub.gitBlobShaOf(existing)) : undefined;
          return { path: filePath, uploadMode: lfs ? 'lfs' : 'regular', shouldIgnore: false, ...(oid ? { oid } : {}) };
        }),
      ),
    };
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseNdjson(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new HubHttpError(400, `commit: line ${i + 1} is not JSON`);
      }
    });
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) throw new HubHttpError(413, `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = (await readBody(req, MAX_JSON_BODY)).toString('utf8');
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new HubHttpError(400, 'request body is not JSON');
  }
}

/** paths-info takes JSON (JS client) or a form with repeated `paths` (Python client). */
async function readPaths(req: IncomingMessage): Promise<string[]> {
  const text = (await readBody(req, MAX_JSON_BODY)).toString('utf8');
  const paths = (req.headers['content-type'] ?? '').includes('application/json')
    ? (JSON.parse(text) as { paths?: unknown }).paths
    : new URLSearchParams(text).getAll('paths');
  if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string'))
    throw new HubHttpError(400, 'paths-info: paths must be a list of strings');
  return paths as string[];
}

/** Serves a stored object whole or one `bytes=a-b` range (the JS client probes with bytes=0-0). */
async function sendObject(
  req: IncomingMessage,
  res: ServerResponse,
  file: string,
  size: number,
  headers: Record<string, string>,
): Promise<void> {
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range && range[2] !== '' ? Math.min(Number(range[2]), size - 1) : size - 1;
  if (range && (start >= size || start > end)) {
    res.writeHead(416, { 'Content-Range': `bytes */${size}` });
    return void res.end();
  }
  res.writeHead(range ? 206 : 200, {
    ...headers,
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(end - start + 1),
    'Accept-Ranges': 'bytes',
    ...(range ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
  });
  if (req.method === 'HEAD' || size === 0) return void res.end();
  await pipeline(createReadStream(file, { start, end }), res);
}

function sendJson(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.destroy();
  const e =
    err instanceof HubHttpError ? err : new HubHttpError(500, `local hub: ${String((err as Error)?.message ?? err)}`);
  const text = JSON.stringify({ error: e.message });
  res.writeHead(e.status, {
    ...e.headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'X-Error-Message': e.message.replace(/[^\x20-\x7e]/g, '?'),
    ...(e.code ? { 'X-Error-Code': e.code } : {}),
  });
  res.end(text);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HubHttpError(400, `path segment '${segment}' is not valid percent-encoding`);
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
