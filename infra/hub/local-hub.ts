// A local Hugging Face Hub for the demo and the tests, as the devnet is for the chain: the part of the
// Hub's HTTP API that @huggingface/hub (JS) and Python huggingface_hub call to create a model repo,
// commit files (inline base64 or through the LFS batch API), resolve a file at a branch or a full or
// short commit sha, and read model info, paths info and refs.
//
// On disk (under `dir`): objects/<sha256> holds every file's bytes once (content-addressed);
// repos/<ns>/<name>/commits/<sha>.json is one commit (its whole file table); refs.json maps branches
// to commits. Commits are never rewritten: a commit that changes nothing returns the branch's head.
// Writes need `Authorization: Bearer …` (the configured token, or any token when none is set);
// reads are public. LFS uploads go to a one-time upload link, as the real Hub's presigned S3 URLs do.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';

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

/** The .gitattributes a new repo on the Hub starts with (the LFS patterns that matter for checkpoints). */
const DEFAULT_GITATTRIBUTES = [
  '*.7z',
  '*.arrow',
  '*.bin',
  '*.bz2',
  '*.ckpt',
  '*.gz',
  '*.h5',
  '*.joblib',
  '*.model',
  '*.msgpack',
  '*.npy',
  '*.npz',
  '*.onnx',
  '*.parquet',
  '*.pb',
  '*.pickle',
  '*.pkl',
  '*.pt',
  '*.pth',
  '*.safetensors',
  '*.tar',
  '*.tflite',
  '*.tgz',
  '*.xz',
  '*.zip',
  '*.zst',
  '*tfevents*',
]
  .map((p) => `${p} filter=lfs diff=lfs merge=lfs -text\n`)
  .join('');

interface FileEntry {
  sha256: string;
  size: number;
  lfs: boolean;
}

interface Commit {
  id: string;
  parents: string[];
  title: string;
  description: string;
  date: string;
  files: Record<string, FileEntry>;
}

interface RepoMeta {
  id: string;
  internalId: string;
  createdAt: string;
}

/** An error answered to the client: status, the Hub's X-Error-Code when it has one, a message. */
class HubHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_-])?$/;

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

/** The repos, commits and objects on disk. */
class HubStorage {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly blobShas = new Map<string, string>();

  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await fs.mkdir(path.join(this.root, 'objects'), { recursive: true });
    await fs.mkdir(path.join(this.root, 'tmp'), { recursive: true });
  }

  objectPath(sha256: string): string {
    return path.join(this.root, 'objects', sha256);
  }

  async objectSize(sha256: string): Promise<number | undefined> {
    return fs.stat(this.objectPath(sha256)).then(
      (s) => s.size,
      () => undefined,
    );
  }

  private repoDir(id: string): string {
    return path.join(this.root, 'repos', ...id.split('/'));
  }

  async createRepo(ns: string, name: string): Promise<RepoMeta | undefined> {
    if (!NAME_RE.test(ns) || !NAME_RE.test(name) || name.endsWith('.git') || ns.includes('..') || name.includes('..'))
      throw new HubHttpError(400, `repo id '${ns}/${name}' is invalid: use letters, digits, '-', '_' and '.'`);
    const id = `${ns}/${name}`;
    return this.locked(id, async () => {
      if (await this.meta(id)) return undefined;
      const meta: RepoMeta = { id, internalId: randomBytes(12).toString('hex'), createdAt: new Date().toISOString() };
      await fs.mkdir(path.join(this.repoDir(id), 'commits'), { recursive: true });
      // A new repo on the Hub has one commit holding the default .gitattributes.
      const attributes = await this.putBytes(Buffer.from(DEFAULT_GITATTRIBUTES));
      const first = await this.writeCommit(id, [], 'initial commit', '', { '.gitattributes': attributes });
      await writeJsonAtomic(path.join(this.repoDir(id), 'refs.json'), { main: first.id });
      await writeJsonAtomic(path.join(this.repoDir(id), 'repo.json'), meta);
      return meta;
    });
  }

  private async meta(id: string): Promise<RepoMeta | undefined> {
    return readJsonFile<RepoMeta>(path.join(this.repoDir(id), 'repo.json'));
  }

  async repo(ns: string, name: string): Promise<RepoMeta> {
    const meta = NAME_RE.test(ns) && NAME_RE.test(name) ? await this.meta(`${ns}/${name}`) : undefined;
    if (!meta) throw new HubHttpError(404, `Repository not found: ${ns}/${name}`, 'RepoNotFound');
    return meta;
  }

  async refs(id: string): Promise<Record<string, string>> {
    return (await readJsonFile<Record<string, string>>(path.join(this.repoDir(id), 'refs.json'))) ?? {};
  }

  /** A branch, HEAD, a full commit sha or a unique prefix of at least 7 hex characters. */
  async commitAt(id: string, rev: string): Promise<Commit> {
    const refs = await this.refs(id);
    const branch = rev === 'HEAD' ? 'main' : rev;
    let sha = Object.hasOwn(refs, branch) ? refs[branch] : undefined;
    if (!sha && /^[0-9a-f]{7,40}$/.test(rev)) {
      const all = (await fs.readdir(path.join(this.repoDir(id), 'commits'))).map((f) => f.replace(/\.json$/, ''));
      const matches = all.filter((c) => c.startsWith(rev));
      if (matches.length > 1)
        throw new HubHttpError(
          404,
          `Invalid rev id: ${rev} is ambiguous in ${id} (${matches.length} commits)`,
          'RevisionNotFound',
        );
      sha = matches[0];
    }
    const commit = sha ? await readJsonFile<Commit>(path.join(this.repoDir(id), 'commits', `${sha}.json`)) : undefined;
    if (!commit)
      throw new HubHttpError(404, `Invalid rev id: ${rev} is not a branch or commit of ${id}`, 'RevisionNotFound');
    return commit;
  }

  async commit(id: string, branch: string, ops: Record<string, unknown>[]): Promise<string> {
    const header = ops[0];
    if (header?.key !== 'header') throw new HubHttpError(400, 'commit: the first line must be the header');
    const { summary, description, parentCommit } = (header.value ?? {}) as Record<string, unknown>;
    if (typeof summary !== 'string' || !summary) throw new HubHttpError(400, 'commit: header.summary is required');
    // Objects are written (idempotently) before taking the branch lock; the commit itself is atomic.
    const changes: [string, FileEntry | null][] = [];
    for (const op of ops.slice(1)) {
      const v = (op.value ?? {}) as Record<string, unknown>;
      const p = checkRepoPath(v.path);
      if (op.key === 'file') {
        if (v.encoding !== 'base64' || typeof v.content !== 'string')
          throw new HubHttpError(400, `commit: file ${p}: content must be base64 with encoding 'base64'`);
        changes.push([p, await this.putBytes(Buffer.from(v.content, 'base64'))]);
      } else if (op.key === 'lfsFile') {
        const oid = String(v.oid);
        const size = await this.objectSize(oid);
        if (v.algo !== 'sha256' || !/^[0-9a-f]{64}$/.test(oid) || size === undefined)
          throw new HubHttpError(422, `commit: LFS file ${p}: object sha256:${oid} was never uploaded`);
        if (v.size !== undefined && v.size !== size)
          throw new HubHttpError(
            422,
            `commit: LFS file ${p}: size ${String(v.size)} differs from the stored object's ${size}`,
          );
        changes.push([p, { sha256: oid, size, lfs: true }]);
      } else if (op.key === 'deletedFile' || op.key === 'deletedFolder') {
        changes.push([op.key === 'deletedFolder' ? `${p}/` : p, null]);
      } else {
        throw new HubHttpError(400, `commit: operation '${String(op.key)}' is not served by this local hub`);
      }
    }
    return this.locked(id, async () => {
      const refs = await this.refs(id);
      if (!Object.hasOwn(refs, branch))
        throw new HubHttpError(404, `Invalid rev id: ${branch} is not a branch of ${id}`, 'RevisionNotFound');
      const head = await this.commitAt(id, refs[branch]);
      if (typeof parentCommit === 'string' && parentCommit && parentCommit !== head.id)
        throw new HubHttpError(412, `commit: ${branch} of ${id} is at ${head.id}, not at the parent ${parentCommit}`);
      const files = { ...head.files };
      for (const [p, entry] of changes) {
        if (entry) files[p] = entry;
        else if (p.endsWith('/')) for (const f of Object.keys(files).filter((f) => f.startsWith(p))) delete files[f];
        else if (files[p]) delete files[p];
        else throw new HubHttpError(404, `commit: cannot delete ${p}: it does not exist in ${id}`, 'EntryNotFound');
      }
      if (sameFiles(files, head.files)) return head.id; // nothing changed: no empty commit
      const next = await this.writeCommit(
        id,
        [head.id],
        summary,
        typeof description === 'string' ? description : '',
        files,
      );
      await writeJsonAtomic(path.join(this.repoDir(id), 'refs.json'), { ...refs, [branch]: next.id });
      return next.id;
    });
  }

  private async writeCommit(
    id: string,
    parents: string[],
    title: string,
    description: string,
    files: Record<string, FileEntry>,
  ): Promise<Commit> {
    const date = new Date().toISOString();
    const sorted = Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1)));
    const sha = createHash('sha1')
      .update(JSON.stringify({ id, parents, title, description, date, files: sorted, nonce: randomUUID() }))
      .digest('hex');
    const commit: Commit = { id: sha, parents, title, description, date, files: sorted };
    await writeJsonAtomic(path.join(this.repoDir(id), 'commits', `${sha}.json`), commit);
    return commit;
  }

  async putBytes(bytes: Buffer): Promise<FileEntry> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if ((await this.objectSize(sha256)) !== bytes.length) {
      const tmp = path.join(this.root, 'tmp', randomUUID());
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, this.objectPath(sha256));
    }
    return { sha256, size: bytes.length, lfs: false };
  }

  /** Streams an LFS upload into the object store; refuses bytes whose sha256 or size is not the announced one. */
  async putObject(body: IncomingMessage, oid: string, size: number): Promise<void> {
    const tmp = path.join(this.root, 'tmp', randomUUID());
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            bytes += chunk.length;
            if (bytes > size) throw new HubHttpError(400, `LFS upload: more than the announced ${size} bytes`);
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp),
      );
      const got = hash.digest('hex');
      if (bytes !== size || got !== oid)
        throw new HubHttpError(
          400,
          `LFS upload: received ${bytes} bytes with sha256 ${got}; expected ${size} bytes with ${oid}`,
        );
      await fs.rename(tmp, this.objectPath(oid));
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async readText(entry: FileEntry | undefined): Promise<string | undefined> {
    return entry ? fs.readFile(this.objectPath(entry.sha256), 'utf8') : undefined;
  }

  /** The git object id the Hub shows for a file: of the bytes, or of the LFS pointer for an LFS file. */
  async gitBlobShaOf(entry: FileEntry): Promise<string> {
    if (entry.lfs) return gitBlobSha(Buffer.from(lfsPointer(entry)));
    let sha = this.blobShas.get(entry.sha256);
    if (!sha) {
      sha = gitBlobSha(await fs.readFile(this.objectPath(entry.sha256)));
      this.blobShas.set(entry.sha256, sha);
    }
    return sha;
  }

  /** Runs `fn` after every earlier write to the same repo has finished. */
  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.locks.set(
      id,
      next.catch(() => undefined),
    );
    return next;
  }
}

function lfsPointer(e: FileEntry): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${e.sha256}\nsize ${e.size}\n`;
}

export function gitBlobSha(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

function sameFiles(a: Record<string, FileEntry>, b: Record<string, FileEntry>): boolean {
  const ka = Object.keys(a);
  return (
    ka.length === Object.keys(b).length &&
    ka.every((k) => b[k] && b[k].sha256 === a[k].sha256 && b[k].size === a[k].size && b[k].lfs === a[k].lfs)
  );
}

/** .gitattributes lines with filter=lfs → regexes over repo paths (a pattern without '/' matches the basename). */
function parseLfsPatterns(text: string): RegExp[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 1 && f[0] && !f[0].startsWith('#') && f.includes('filter=lfs'))
    .map(([pattern]) => {
      const body = pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .split('**')
        .map((part) => part.replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
        .join('.*');
      return pattern.includes('/') ? new RegExp(`^${body.replace(/^\//, '')}$`) : new RegExp(`(^|/)${body}$`);
    });
}

function checkRepoPath(p: unknown): string {
  if (
    typeof p !== 'string' ||
    p === '' ||
    p.includes('\0') ||
    p.includes('\\') ||
    p.startsWith('/') ||
    p.split('/').some((s) => s === '' || s === '.' || s === '..')
  )
    throw new HubHttpError(400, `path ${JSON.stringify(p)} is not a relative path inside the repo`);
  return p;
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

async function readJsonFile<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${randomUUID()}`;
  await fs.writeFile(tmp, JSON.stringify(value));
  await fs.rename(tmp, file);
}
