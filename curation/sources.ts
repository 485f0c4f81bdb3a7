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

/** The files of a corpus: `spec` is a file, a folder (walked recursively) or a glob such as data/**\/*.jsonl. */
export async function listCorpusFiles(spec: string, format: SourceOptions['format']): Promise<CorpusFile[]> {
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
  if (GLOB_CHARS.test(spec)) {
    const parts = spec.split(path.sep);
    const firstGlob = parts.findIndex((p) => GLOB_CHARS.test(p));
    const root = parts.slice(0, firstGlob).join(path.sep) || '.';
    const re = globToRegExp(path.resolve(spec));
    for (const p of await walk(root)) if (re.test(path.resolve(p))) await add(p);
    if (out.length === 0) throw new CorpusError(`corpus.path '${spec}' matches no .txt, .md or .jsonl files`);
    return out;
  }
  const stat = await fs.stat(spec).catch(() => undefined);
  if (!stat) throw new CorpusError(`corpus.path '${spec}' does not exist`);
  if (stat.isFile()) {
    if (!formatOf(spec)) throw new CorpusError(`corpus.path '${spec}': unknown file type; use .txt, .md or .jsonl, or set corpus.format`);
    await add(spec);
    return out;
  }
  for (const p of await walk(spec)) await add(p);
  if (out.length === 0) throw new CorpusError(`corpus.path '${spec}' holds no .txt, .md or .jsonl files`);
  return out;
}

/** Every file under `dir`, sorted, skipping dot-files and dot-folders. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith('.')) continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out;
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
  if (typeof text !== 'string') return { error: `field '${opts.textField}' is ${text === undefined ? 'missing' : 'not a string'}` };
  return text;
}
