// Curation: read a corpus, normalise, drop what cannot help (empty, too short/long, malformed,
// exact duplicates), split train / held-out by document so no document is in both, and report
// every drop with its reason. Plain functions: the curate activity and `minerflow curate` call it.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface CurateOptions {
  format: 'auto' | 'text' | 'jsonl';
  textField: string;
  minChars: number;
  maxChars: number;
  heldOutFraction: number;
  seed: number;
}

export type DropReason = 'empty' | 'tooShort' | 'tooLong' | 'malformed' | 'duplicate';

export interface CurateReport {
  source: string;
  options: CurateOptions;
  files: number;
  documentsIn: number;
  train: { documents: number; chars: number };
  heldOut: { documents: number; chars: number };
  dropped: Record<DropReason, number>;
  examples: Partial<Record<DropReason, { source: string; why: string; preview: string }[]>>;
}

export interface CuratedDataset {
  id: string; // sha256 of the split's content and options: same input, same id
  dir: string; // holds train.jsonl, heldout.jsonl, report.json
  report: CurateReport;
}

/** A document as read, before cleaning; `source` is file (and line) for messages. */
interface RawDoc {
  source: string;
  text?: string;
  malformed?: string;
}

const MAX_EXAMPLES = 3;

export async function curate(corpusPath: string, outRoot: string, opts: CurateOptions): Promise<CuratedDataset> {
  const files = await listCorpusFiles(corpusPath, opts.format);
  const tmp = path.join(outRoot, `.tmp-${process.pid}-${Date.now()}`);
  await fs.mkdir(tmp, { recursive: true });
  const train = await fs.open(path.join(tmp, 'train.jsonl'), 'w');
  const heldOut = await fs.open(path.join(tmp, 'heldout.jsonl'), 'w');
  const report: CurateReport = {
    source: corpusPath,
    options: opts,
    files: files.length,
    documentsIn: 0,
    train: { documents: 0, chars: 0 },
    heldOut: { documents: 0, chars: 0 },
    dropped: { empty: 0, tooShort: 0, tooLong: 0, malformed: 0, duplicate: 0 },
    examples: {},
  };
  const seen = new Set<string>();
  const idHash = createHash('sha256').update(JSON.stringify(opts));
  const drop = (reason: DropReason, doc: RawDoc, why: string) => {
    report.dropped[reason] += 1;
    const list = (report.examples[reason] ??= []);
    if (list.length < MAX_EXAMPLES) list.push({ source: doc.source, why, preview: (doc.text ?? '').slice(0, 120) });
  };
  try {
    for (const file of files) {
      for await (const doc of readDocuments(file.path, file.format, opts.textField)) {
        report.documentsIn += 1;
        if (doc.malformed !== undefined) {
          drop('malformed', doc, doc.malformed);
          continue;
        }
        const text = normalise(doc.text ?? '');
        if (text.length === 0) drop('empty', doc, 'no text after normalisation');
        else if (text.length < opts.minChars) drop('tooShort', doc, `${text.length} chars < curate.minChars ${opts.minChars}`);
        else if (text.length > opts.maxChars) drop('tooLong', doc, `${text.length} chars > curate.maxChars ${opts.maxChars}`);
        else {
          const digest = createHash('sha256').update(text).digest('hex');
          if (seen.has(digest)) {
            drop('duplicate', { ...doc, text }, 'exact duplicate of an earlier document');
            continue;
          }
          seen.add(digest);
          idHash.update(digest);
          const toHeldOut = isHeldOut(digest, opts.seed, opts.heldOutFraction);
          const side = toHeldOut ? report.heldOut : report.train;
          side.documents += 1;
          side.chars += text.length;
          await (toHeldOut ? heldOut : train).write(JSON.stringify({ text }) + '\n');
        }
      }
    }
  } finally {
    await train.close();
    await heldOut.close();
  }
  if (report.train.documents === 0 || report.heldOut.documents === 0) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw new CorpusError(
      `corpus.path '${corpusPath}': after curation ${report.train.documents} train and ${report.heldOut.documents} held-out documents remain ` +
        `(read ${report.documentsIn} in ${files.length} files; dropped ${JSON.stringify(report.dropped)}); both splits need at least one document`,
    );
  }
  const id = idHash.digest('hex').slice(0, 32);
  await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const dir = path.join(outRoot, id);
  if (await exists(dir)) await fs.rm(tmp, { recursive: true, force: true });
  else await fs.rename(tmp, dir);
  return { id, dir, report };
}

/** Errors in the corpus itself (missing, empty, unreadable): retrying cannot fix them. */
export class CorpusError extends Error {
  override name = 'CorpusError';
}

/** NFC, LF line ends, no control characters but tab and newline, no trailing spaces, ≤1 blank line. */
export function normalise(text: string): string {
  return text
    .normalize('NFC')
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\u200B\uFEFF]/g, '')
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Deterministic split by content: a document's side depends only on its text and the seed. */
export function isHeldOut(digestHex: string, seed: number, fraction: number): boolean {
  const h = createHash('sha256').update(`${seed}:${digestHex}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < fraction;
}

interface CorpusFile {
  path: string;
  format: 'text' | 'jsonl';
}

async function listCorpusFiles(corpusPath: string, format: CurateOptions['format']): Promise<CorpusFile[]> {
  const stat = await fs.stat(corpusPath).catch(() => undefined);
  if (!stat) throw new CorpusError(`corpus.path '${corpusPath}' does not exist`);
  const formatOf = (p: string): CorpusFile['format'] | undefined => {
    if (format !== 'auto') return format;
    if (p.endsWith('.jsonl')) return 'jsonl';
    if (p.endsWith('.txt') || p.endsWith('.md')) return 'text';
    return undefined;
  };
  if (stat.isFile()) {
    const f = formatOf(corpusPath);
    if (!f) throw new CorpusError(`corpus.path '${corpusPath}': unknown file type; use .txt, .md or .jsonl, or set corpus.format`);
    return [{ path: corpusPath, format: f }];
  }
  const out: CorpusFile[] = [];
  const walk = async (dir: string) => {
    for (const entry of (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, entry.name);
      if (entry.name.startsWith('.')) continue;
      if (entry.isDirectory()) await walk(p);
      else {
        const f = formatOf(p);
        if (f) out.push({ path: p, format: f });
      }
    }
  };
  await walk(corpusPath);
  if (out.length === 0) throw new CorpusError(`corpus.path '${corpusPath}' holds no .txt, .md or .jsonl files`);
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function* readDocuments(file: string, format: CorpusFile['format'], textField: string): AsyncGenerator<RawDoc> {
  if (format === 'text') {
    const bytes = await fs.readFile(file);
    if (bytes.includes(0)) {
      yield { source: file, malformed: 'binary file (contains NUL bytes)' };
      return;
    }
    try {
      yield { source: file, text: utf8.decode(bytes) };
    } catch {
      yield { source: file, malformed: 'not valid UTF-8' };
    }
    return;
  }
  const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    const source = `${file}:${n}`;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      yield { source, malformed: `invalid JSON (${(err as Error).message})` };
      continue;
    }
    const text = value && typeof value === 'object' ? (value as Record<string, unknown>)[textField] : undefined;
    if (typeof text !== 'string') yield { source, malformed: `field '${textField}' is ${text === undefined ? 'missing' : 'not a string'}` };
    else if (text.includes('\uFFFD')) yield { source, malformed: 'contains U+FFFD (text was not valid UTF-8)' };
    else yield { source, text };
  }
}

/** Reads the texts of a curated .jsonl split. */
export async function readSplit(file: string): Promise<string[]> {
  const out: string[] = [];
  const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) if (line) out.push((JSON.parse(line) as { text: string }).text);
  return out;
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(() => true, () => false);
}
