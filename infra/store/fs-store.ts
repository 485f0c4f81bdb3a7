// Filesystem checkpoint store: the default. Writes go to a temp file in the same folder and are
// renamed into place, so a crash never leaves a half-written checkpoint under its real name.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImmutableObjectError, ObjectNotFoundError, type CheckpointStore } from './store';

/** A store key that could name something outside the store (absolute, `..`, NUL): a bug or hostile input, never retried. */
export class InvalidStoreKeyError extends Error {
  override name = 'InvalidStoreKeyError';
}

/**
 * Refuses keys that are not plain relative paths: empty, absolute (/x, C:\x, \\host), with a
 * NUL or backslash, or with an empty, '.' or '..' segment. Every store checks keys with this.
 */
export function checkStoreKey(key: string): string {
  const why =
    typeof key !== 'string' || key === ''
      ? 'it is empty'
      : key.includes('\0')
        ? 'it contains a NUL character'
        : key.includes('\\')
          ? 'it contains a backslash'
          : key.startsWith('/') || /^[a-zA-Z]:/.test(key)
            ? 'it is absolute'
            : key.split('/').some((s) => s === '..')
              ? "it has a '..' segment"
              : key.split('/').some((s) => s === '' || s === '.')
                ? "it has an empty or '.' segment"
                : undefined;
  if (why)
    throw new InvalidStoreKeyError(
      `store key '${String(key).replace(/\0/g, '\\0')}' is invalid: ${why}; keys are relative paths such as checkpoints/<hash>/model.safetensors`,
    );
  return key;
}

export class FsStore implements CheckpointStore {
  readonly uri: string;

  constructor(readonly root: string) {
    this.root = path.resolve(root);
    this.uri = pathToFileURL(this.root).href;
  }

  pathOf(key: string): string {
    const p = path.resolve(this.root, checkStoreKey(key));
    if (!p.startsWith(this.root + path.sep))
      throw new InvalidStoreKeyError(`store key '${key}' escapes the store root ${this.root}`);
    return p;
  }

  async put(key: string, localFile: string, opts: { immutable?: boolean } = {}): Promise<void> {
    const dest = this.pathOf(key);
    if (path.resolve(localFile) === dest) return;
    if (opts.immutable && (await this.exists(key))) {
      if ((await sha256(dest)) === (await sha256(localFile))) return; // a retry of the same write
      throw new ImmutableObjectError(
        `store object '${key}' already exists with different content; committed checkpoints are never overwritten`,
      );
    }
    await fs.mkdir(path.dirname(dest), { recursive: true });
    const tmp = `${dest}.tmp-${randomUUID()}`; // unique: two puts of one key may run at once
    try {
      await fs.copyFile(localFile, tmp);
      const handle = await fs.open(tmp, 'r+');
      await handle.sync();
      await handle.close();
      await fs.rename(tmp, dest);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async get(key: string): Promise<string> {
    const p = this.pathOf(key);
    if (!(await this.exists(key))) throw new ObjectNotFoundError(`store object '${key}' not found in ${this.uri}`);
    return p;
  }

  async exists(key: string): Promise<boolean> {
    return fs.access(this.pathOf(key)).then(
      () => true,
      () => false,
    );
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
  }
}

export function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}
