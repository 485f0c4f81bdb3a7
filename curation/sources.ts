// Reading a corpus: folders, globs and single files of .txt/.md (one document per file) and .jsonl
// (one document per line, from a text field or an instruction/response pair). Everything streams:
// a corpus larger than memory is read one document at a time.
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface SourceOptions {
  format: 'auto' | 'text' | 'jsonl';
  textField: string;
  /** For instruction data: when both are set and present, a document is "<instruction>\n\n<response>". */
  instructionField?: string;
  responseField?: string;
}

export interface CorpusFile {
  path: string;
  format: 'text' | 'jsonl';
  size: number;
  mtimeMs: number;
}

/** A document as read, before cleaning; `source` is file (and line) for messages. */
export interface RawDoc {
  source: string;
  text?: string;
  malformed?: string;
}

/** Errors in the corpus itself (missing, empty, unreadable): retrying cannot fix them. */
export class CorpusError extends Error {
  override name = 'CorpusError';
}

const GLOB_CHARS = /[*?[]/;

/** Where a corpus may be read from. Workflow input is written by anyone who reaches Temporal. */
export interface CorpusAccess {
  /** Folders the corpus must lie in, symlinks resolved; undefined: anywhere (trusted local callers only). */
  roots?: string[];
  /** The input field the path came from, for messages (corpus.path, curate.domain.reference). */
  field?: string;
}

/**
 * Refuses `p` unless its real path (symlinks resolved; for a path that does not exist, its nearest
 * existing ancestor's) lies inside one of `roots`. Reads no file: realpath only looks at links.
 */
export async function checkInsideRoots(p: string, roots: string[], field: string, shown = p): Promise<string> {
  const real = await realPathOf(p);
  const realRoots = await Promise.all(roots.map(realPathOf));
  if (!realRoots.some((root) => isInside(real, root))) {
    throw new CorpusError(
      `${field} '${shown}' is outside the folders corpora may be read from (${roots.join(', ')}); ` +
        `move the corpus into one of them, or add its folder to MINERFLOW_DATA_ROOTS (separated by '${path.delimiter}') in the worker's environment`,
    );
  }
  return real;
}

/** True when `p` is `root` or inside it (both absolute, already resolved). */
export function isInside(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** fs.realpath, or for a missing path its nearest existing ancestor's real path plus the rest. */
async function realPathOf(p: string): Promise<string> {
  const abs = path.resolve(p);
  try {
    return await fs.realpath(abs);
  } catch {
    const parent = path.dirname(abs);
    if (parent === abs) return abs;
    return path.join(await realPathOf(parent), path.basename(abs));
  }
}

/** The files of a corpus: `spec` is a file, a folder (walked recursively) or a glob such as data/**\/*.jsonl. */
export async function listCorpusFiles(
  spec: string,
  format: SourceOptions['format'],
  access: CorpusAccess = {},
): Promise<CorpusFile[]> {
  const field = access.field ?? 'corpus.path';
  const formatOf = (p: string): CorpusFile['format'] | undefined => {
    if (format !== 'auto') return format;
    if (p.endsWith('.jsonl')) return 'jsonl';
    if (p.endsWith('.txt') || p.endsWith('.md')) return 'text';
    return undefined;
  };
  const out: CorpusFile[] = [];
  const add = async (p: string) => {
    const f = formatOf(p);
    if (!f) return;
    const st = await fs.stat(p);
    out.push({ path: p, format: f, size: st.size, mtimeMs: st.mtimeMs });
  };
  const walker = new Walker(access.roots, field, spec);
  if (GLOB_CHARS.test(spec)) {
    const parts = spec.split(path.sep);
    const firstGlob = parts.findIndex((p) => GLOB_CHARS.test(p));
    const root = parts.slice(0, firstGlob).join(path.sep) || (spec.startsWith(path.sep) ? path.sep : '.');
    if (access.roots) await checkInsideRoots(root, access.roots, field, spec);
    const re = globToRegExp(path.resolve(spec));
    for (const p of await walker.walk(root)) if (re.test(path.resolve(p))) await add(p);
    if (out.length === 0) throw new CorpusError(`${field} '${spec}' matches no .txt, .md or .jsonl files`);
    return out;
  }
  if (access.roots) await checkInsideRoots(spec, access.roots, field);
  const stat = await fs.stat(spec).catch(() => undefined);
  if (!stat) throw new CorpusError(`${field} '${spec}' does not exist`);
  if (stat.isFile()) {
    if (!formatOf(spec))
      throw new CorpusError(`${field} '${spec}': unknown file type; use .txt, .md or .jsonl, or set corpus.format`);
    await add(spec);
    return out;
  }
  for (const p of await walker.walk(spec)) await add(p);
  if (out.length === 0) throw new CorpusError(`${field} '${spec}' holds no .txt, .md or .jsonl files`);
  return out;
}

/**
 * Every file under a folder, sorted, skipping dot-files and dot-folders. With roots, a symbolic
 * link is followed only when its target lies inside them (one outside fails the corpus, by the
 * link's name); without roots, links are skipped.
 */
class Walker {
  private readonly visited = new Set<string>(); // real folders walked: a link loop ends here

  constructor(
    private readonly roots: string[] | undefined,
    private readonly field: string,
    private readonly spec: string,
  ) {}

  async walk(dir: string): Promise<string[]> {
    const real = await fs.realpath(dir).catch(() => path.resolve(dir));
    if (this.visited.has(real)) return [];
    this.visited.add(real);
    const out: string[] = [];
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith('.')) continue;
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) out.push(...(await this.walk(p)));
      else if (entry.isFile()) out.push(p);
      else if (entry.isSymbolicLink() && this.roots) {
        const target = await fs.realpath(p).catch(() => undefined);
        if (target === undefined) continue; // a dangling link holds nothing to read
        if (!(await this.insideRoots(target))) {
          throw new CorpusError(
            `${this.field} '${this.spec}': ${p} is a symbolic link to a place outside the folders corpora may be read from (${this.roots.join(', ')}); ` +
              `remove the link, copy the data in, or add the target's folder to MINERFLOW_DATA_ROOTS`,
          );
        }
        const st = await fs.stat(target);
        if (st.isDirectory()) out.push(...(await this.walk(p)));
        else if (st.isFile()) out.push(p);
      }
    }
    return out;
  }

  private async insideRoots(real: string): Promise<boolean> {
    const realRoots = await Promise.all(this.roots!.map(realPathOf));
    return realRoots.some((root) => isInside(real, root));
  }
}

/** `**` any folders, `*` any characters but `/`, `?` one character, `[abc]` a set. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      re += end > i ? glob.slice(i, end + 1) : '\\[';
      i = end > i ? end : i;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function* readDocuments(file: CorpusFile, opts: SourceOptions): AsyncGenerator<RawDoc> {
  if (file.format === 'text') {
    const bytes = await fs.readFile(file.path);
    if (bytes.includes(0)) {
      yield { source: file.path, malformed: 'binary file (contains NUL bytes)' };
      return;
    }
    try {
      yield { source: file.path, text: utf8.decode(bytes) };
    } catch {
      yield { source: file.path, malformed: 'not valid UTF-8' };
    }
    return;
  }
  const lines = readline.createInterface({ input: createReadStream(file.path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    const source = `${file.path}:${n}`;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      yield { source, malformed: `invalid JSON (${(err as Error).message})` };
      continue;
    }
    const text = documentText(value, opts);
    if (typeof text !== 'string') yield { source, malformed: text.error };
    else if (text.includes('\uFFFD')) yield { source, malformed: 'contains U+FFFD (the text was not valid UTF-8)' };
    else yield { source, text };
  }
}

function documentText(value: unknown, opts: SourceOptions): string | { error: string } {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { error: 'line is not a JSON object' };
  const v = value as Record<string, unknown>;
  if (opts.instructionField && opts.responseField && (opts.instructionField in v || opts.responseField in v)) {
    const ins = v[opts.instructionField];
    const res = v[opts.responseField];
    if (typeof ins !== 'string' || typeof res !== 'string') {
      return { error: `fields '${opts.instructionField}' and '${opts.responseField}' must both be strings` };
    }
    return `${ins}\n\n${res}`;
  }
  const text = v[opts.textField];
  if (typeof text !== 'string')
    return { error: `field '${opts.textField}' is ${text === undefined ? 'missing' : 'not a string'}` };
  return text;
}
