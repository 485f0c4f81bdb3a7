// The Hugging Face Hub as a model transport, through the official JS client (@huggingface/hub).
// Like our checkpoint stores it is content-addressed and immutable in use: an upload whose files are
// already at the head of the repo makes no new commit, a commit is addressed by its full sha, and a
// download is hashed while it streams, compared with what the Hub records for the file (the LFS
// sha256 and size, or the git blob id of a small file), and renamed into place only when it matches.
//
// The token comes from the worker's environment (HF_TOKEN, see infra/settings.ts); it is handed to
// the client and to fetch, and never to a log line or an error message.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pathToFileURL } from 'node:url';
import { commit, createRepo, HubApiError, modelInfo, pathsInfo, type PathInfo } from '@huggingface/hub';
import { logger as rootLogger, type Logger } from '../log';

export interface ModelHub {
  readonly endpoint: string;
  /** Creates the repo if missing and uploads the files as ONE commit; returns the full 40-hex commit sha. */
  upload(repo: string, files: { path: string; file: string }[], message: string): Promise<{ commitSha: string }>;
  /** Resolves a revision (branch, full sha, or 7-char short sha) to the full commit sha. */
  resolve(repo: string, revision: string): Promise<string>;
  /** Streams one file at a revision to `dest` (written to a temp name, renamed when complete and verified
   *  against the hub's LFS sha256 / size where the hub gives them); returns what it verified. */
  download(
    repo: string,
    revision: string,
    filename: string,
    dest: string,
  ): Promise<{ sha256: string; bytes: number; commitSha: string }>;
}

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

/** A repo, revision or file the hub does not have: retrying will not help. */
export class HubNotFoundError extends Error {
  override name = 'HubNotFoundError';
}

/** Bytes that are not what the hub records for the file (corrupt, truncated, or the download broke). */
export class HubIntegrityError extends Error {
  override name = 'HubIntegrityError';
}

/** Bad input to the hub client (a malformed repo id, path or token): a bug or a configuration error. */
export class HubInputError extends Error {
  override name = 'HubInputError';
}

export function openHub(opts: { endpoint: string; token?: string; log?: Logger }): ModelHub {
  return new HfHub(opts.endpoint, opts.token, opts.log ?? rootLogger.child({ module: 'hub' }));
}

const SHA1_RE = /^[0-9a-f]{40}$/;
// The Hub's repo id: namespace/name, each letters, digits, '-', '_', '.' (no '--' or '..', at most 96).
const REPO_RE = /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/;

class HfHub implements ModelHub {
  readonly endpoint: string;

  constructor(
    endpoint: string,
    private readonly token: string | undefined,
    private readonly log: Logger,
  ) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new HubInputError(`hub endpoint '${endpoint}' is not a URL; expected e.g. ${DEFAULT_HUB_ENDPOINT}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new HubInputError(`hub endpoint '${endpoint}' must be http: or https:`);
    if (url.username || url.password) throw new HubInputError('hub endpoint must not carry credentials; use HF_TOKEN');
    // The official client refuses other tokens; say so here, without echoing the token.
    if (token !== undefined && !/^hf_\S+$/.test(token))
      throw new HubInputError("HF_TOKEN is not a Hugging Face token: it must start with 'hf_' and have no spaces");
    this.endpoint = url.href.replace(/\/+$/, '');
  }

  private get auth(): { hubUrl: string; accessToken?: string } {
    return { hubUrl: this.endpoint, ...(this.token ? { accessToken: this.token } : {}) };
  }

  async upload(repo: string, files: { path: string; file: string }[], message: string): Promise<{ commitSha: string }> {
    checkRepo(repo);
    if (!this.token) throw new HubInputError(`uploading to ${repo} on ${this.endpoint} needs HF_TOKEN (a write token)`);
    if (files.length === 0) throw new HubInputError(`upload to ${repo}: no files given`);
    if (!message.trim()) throw new HubInputError(`upload to ${repo}: the commit message is empty`);
    const seen = new Set<string>();
    for (const f of files) {
      checkRepoPath(f.path);
      if (seen.has(f.path)) throw new HubInputError(`upload to ${repo}: path '${f.path}' is given twice`);
      seen.add(f.path);
    }
    const local = await Promise.all(files.map((f) => digestFile(f.file)));

    let head = await this.head(repo);
    if (head && (await this.holds(repo, head, files, local))) {
      this.log.info(
        { repo, commitSha: head, files: files.map((f) => f.path) },
        'hub: files already at head, no commit',
      );
      return { commitSha: head };
    }
    if (!head) {
      await createRepo({ repo, hubUrl: this.endpoint, accessToken: this.token }).catch((err: unknown) => {
        if (!(err instanceof HubApiError && err.statusCode === 409)) throw this.explain(err, `creating repo ${repo}`);
      });
      head = await this.head(repo);
    }
    const out = await commit({
      repo,
      title: message,
      operations: files.map((f) => ({
        operation: 'addOrUpdate',
        path: f.path,
        content: pathToFileURL(path.resolve(f.file)),
      })),
      branch: 'main',
      parentCommit: head, // a concurrent writer makes this commit fail instead of silently interleaving
      useXet: false, // the basic LFS transfer: every hub speaks it, and it sends the bytes we hashed
      ...this.auth,
    }).catch((err: unknown) => {
      throw this.explain(err, `uploading ${files.map((f) => f.path).join(', ')} to ${repo}`);
    });
    const commitSha = out?.commit.oid ?? '';
    if (!SHA1_RE.test(commitSha))
      throw new Error(`hub ${this.endpoint}: commit to ${repo} returned '${commitSha}', not a 40-hex commit sha`);
    // The hub must now record exactly the bytes we hashed.
    if (!(await this.holds(repo, commitSha, files, local)))
      throw new HubIntegrityError(
        `hub ${this.endpoint}: commit ${commitSha} of ${repo} does not hold the files as uploaded`,
      );
    this.log.info({ repo, commitSha, files: files.map((f) => f.path), endpoint: this.endpoint }, 'hub: uploaded');
    return { commitSha };
  }

  async resolve(repo: string, revision: string): Promise<string> {
    checkRepo(repo);
    if (!revision || /[\s\0]/.test(revision) || revision.includes('..'))
      throw new HubInputError(`revision '${revision}' of ${repo} is not a branch name or commit sha`);
    try {
      const info = await modelInfo({ name: repo, revision, additionalFields: ['sha'], ...this.auth });
      const sha = (info as { sha?: unknown }).sha;
      if (typeof sha !== 'string' || !SHA1_RE.test(sha))
        throw new Error(
          `hub ${this.endpoint}: ${repo}@${revision} resolved to '${String(sha)}', not a 40-hex commit sha`,
        );
      return sha;
    } catch (err) {
      if (!(err instanceof HubApiError && err.statusCode === 404))
        throw this.explain(err, `resolving ${repo}@${revision}`);
      const repoExists = (await this.head(repo)) !== undefined;
      throw new HubNotFoundError(
        repoExists
          ? `hub ${this.endpoint}: repo ${repo} has no revision '${revision}' (not a branch or a commit sha)`
          : `hub ${this.endpoint}: repo ${repo} not found (looking for revision '${revision}')`,
      );
    }
  }

  async download(
    repo: string,
    revision: string,
    filename: string,
    dest: string,
  ): Promise<{ sha256: string; bytes: number; commitSha: string }> {
    checkRepoPath(filename);
    const commitSha = await this.resolve(repo, revision);
    const where = `${filename} in ${repo}@${revision} (commit ${commitSha}) on ${this.endpoint}`;
    const [info] = await pathsInfo({ repo, paths: [filename], revision: commitSha, ...this.auth }).catch(
      (err: unknown) => {
        throw this.explain(err, `looking up ${where}`);
      },
    );
    if (!info || info.type !== 'file') throw new HubNotFoundError(`hub: file not found: ${where}`);
    const expected = expectedOf(info);

    // At the full sha, so the bytes cannot change between lookup and download.
    const url = `${this.endpoint}/${repo}/resolve/${commitSha}/${filename.split('/').map(encodeURIComponent).join('/')}`;
    const res = await fetch(url, { headers: this.token ? { Authorization: `Bearer ${this.token}` } : {} }).catch(
      (err: unknown) => {
        throw new Error(`hub: downloading ${where} failed: ${(err as Error).message}`, { cause: err });
      },
    );
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      if (res.status === 404) throw new HubNotFoundError(`hub: file not found (HTTP 404): ${where}`);
      throw new Error(`hub: downloading ${where} failed with HTTP ${res.status}`);
    }

    await fs.mkdir(path.dirname(path.resolve(dest)), { recursive: true });
    const tmp = `${path.resolve(dest)}.part-${randomUUID()}`;
    const sha256 = createHash('sha256');
    // The git blob id only for small files: an LFS file is checked by its sha256 alone.
    const blob = expected.sha256 ? undefined : createHash('sha1').update(`blob ${expected.size}\0`);
    let bytes = 0;
    let streamed = false;
    try {
      await pipeline(
        Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            bytes += chunk.length;
            if (bytes > expected.size)
              return done(new HubIntegrityError(`hub: ${where} sent more than ${expected.size} bytes`));
            sha256.update(chunk);
            blob?.update(chunk);
            done(null, chunk);
          },
        }),
        createWriteStream(tmp),
      );
      streamed = true;
      const got = { sha256: sha256.digest('hex'), gitBlob: blob?.digest('hex') };
      if (bytes !== expected.size)
        throw new HubIntegrityError(
          `hub: ${where}: got ${bytes} bytes, the hub records ${expected.size}; nothing written`,
        );
      if (expected.sha256 ? got.sha256 !== expected.sha256 : got.gitBlob !== expected.gitBlob)
        throw new HubIntegrityError(
          expected.sha256
            ? `hub: ${where}: sha256 ${got.sha256} differs from the hub's ${expected.sha256}; nothing written`
            : `hub: ${where}: git blob id ${got.gitBlob} differs from the hub's ${expected.gitBlob}; nothing written`,
        );
      const handle = await fs.open(tmp, 'r+');
      await handle.sync();
      await handle.close();
      await fs.rename(tmp, dest);
      this.log.info({ repo, commitSha, filename, bytes, sha256: got.sha256 }, 'hub: downloaded and verified');
      return { sha256: got.sha256, bytes, commitSha };
    } catch (err) {
      await fs.rm(tmp, { force: true });
      if (err instanceof HubIntegrityError || streamed) throw err;
      throw new HubIntegrityError(
        `hub: downloading ${where} broke after ${bytes} of ${expected.size} bytes (${(err as Error).message}); nothing written`,
        { cause: err },
      );
    }
  }

  /** The commit at the head of main, or undefined when the repo does not exist. */
  private async head(repo: string): Promise<string | undefined> {
    try {
      const info = await modelInfo({ name: repo, revision: 'main', additionalFields: ['sha'], ...this.auth });
      return (info as { sha?: string }).sha;
    } catch (err) {
      if (err instanceof HubApiError && (err.statusCode === 404 || err.statusCode === 401)) return undefined;
      throw this.explain(err, `reading ${repo}`);
    }
  }

  /** Whether `revision` of `repo` holds every file with exactly the local bytes. */
  private async holds(
    repo: string,
    revision: string,
    files: { path: string }[],
    local: LocalDigest[],
  ): Promise<boolean> {
    const infos = await pathsInfo({ repo, paths: files.map((f) => f.path), revision, ...this.auth }).catch(
      (err: unknown) => {
        throw this.explain(err, `reading ${repo}@${revision}`);
      },
    );
    const byPath = new Map(infos.map((i) => [i.path, i]));
    return files.every((f, i) => {
      const info = byPath.get(f.path);
      if (!info || info.type !== 'file') return false;
      const e = expectedOf(info);
      return e.size === local[i].size && (e.sha256 ? e.sha256 === local[i].sha256 : e.gitBlob === local[i].gitBlob);
    });
  }

  /** An error from the client, with what we were doing; the client's messages carry URLs, never the token. */
  private explain(err: unknown, doing: string): Error {
    if (err instanceof HubApiError) {
      const msg = `hub ${this.endpoint}: ${doing} failed (HTTP ${err.statusCode}): ${err.message}`;
      if (err.statusCode === 401 || err.statusCode === 403)
        return new Error(`${msg}. Check that HF_TOKEN is a write token for this repo`, { cause: err });
      return new Error(msg, { cause: err });
    }
    return new Error(`hub ${this.endpoint}: ${doing} failed: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
    });
  }
}

interface LocalDigest {
  size: number;
  sha256: string;
  /** The git blob id, for files small enough to be committed inline. */
  gitBlob?: string;
}

/** What the hub records for a file: the LFS sha256 and size, or (small files) the git blob id and size. */
function expectedOf(info: PathInfo): { size: number; sha256?: string; gitBlob?: string } {
  if (info.lfs) return { size: info.lfs.size, sha256: info.lfs.oid };
  return { size: info.size, gitBlob: info.oid };
}

/** Files above this always go through LFS on the Hub, so they are compared by sha256 alone. */
const LFS_ALWAYS_ABOVE = 10 * 1024 * 1024;

async function digestFile(file: string): Promise<LocalDigest> {
  const { size } = await fs.stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new HubInputError(`upload: cannot read '${file}': ${err.code ?? err.message}`);
  });
  const sha256 = createHash('sha256');
  const blob = size > LFS_ALWAYS_ABOVE ? undefined : createHash('sha1').update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    sha256.update(chunk);
    blob?.update(chunk);
  }
  return { size, sha256: sha256.digest('hex'), gitBlob: blob?.digest('hex') };
}

function checkRepo(repo: string): void {
  if (typeof repo !== 'string' || !REPO_RE.test(repo) || repo.includes('..') || repo.includes('--'))
    throw new HubInputError(
      `Hugging Face repo id '${repo}' is invalid: expected namespace/name of letters, digits, '-', '_', '.'`,
    );
}

function checkRepoPath(p: string): void {
  if (
    typeof p !== 'string' ||
    p === '' ||
    p.includes('\\') ||
    p.includes('\0') ||
    p.startsWith('/') ||
    p.split('/').some((s) => s === '' || s === '.' || s === '..')
  )
    throw new HubInputError(`path '${String(p)}' is not a relative path inside a repo (e.g. model_expgroup_0.pt)`);
}
