// The local hub's storage: repos, commits and content-addressed objects on disk, under one folder.
// objects/<sha256> holds every file's bytes once; repos/<ns>/<name>/commits/<sha>.json is one
// commit (its whole file table); refs.json maps branches to commits. Commits are never rewritten,
// and a commit that changes nothing returns the branch's head instead of an empty commit.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

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

export interface FileEntry {
  sha256: string;
  size: number;
  lfs: boolean;
}

export interface Commit {
  id: string;
  parents: string[];
  title: string;
  description: string;
  date: string;
  files: Record<string, FileEntry>;
}

export interface RepoMeta {
  id: string;
  internalId: string;
  createdAt: string;
}

/** An error answered to the client: status, the Hub's X-Error-Code when it has one, a message. */
export class HubHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_-])?$/;

/** The repos, commits and objects on disk. */
export class HubStorage {
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
  async putObject(body: Readable, oid: string, size: number): Promise<void> {
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

export function lfsPointer(e: FileEntry): string {
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
export function parseLfsPatterns(text: string): RegExp[] {
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

export function checkRepoPath(p: unknown): string {
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
