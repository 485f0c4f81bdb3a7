// Curation: read a corpus, normalise, drop what cannot help (malformed, too short or long,
// repetitive, boilerplate, junk, exact and near duplicates, off-domain), optionally sample for
// diversity under a budget, and split train / held-out by document so nothing in held-out (nor a
// near copy of it) is trained on. Every drop is counted with its reason. Plain functions: the
// curate activity and `minerflow curate` both call curate().
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { checkQuality, normalise, type QualityReason, type QualityRules } from './clean';
import { farthestFirst, sketch } from './diversity';
import { DomainScorer } from './domain';
import { MinHasher, NearDuplicateIndex } from './minhash';
import { CorpusError, listCorpusFiles, readDocuments, type CorpusFile, type SourceOptions } from './sources';

export { CorpusError, normalise };
export { checkInsideRoots } from './sources';

/** Bump when curation's output for the same input changes, so cached results are not reused. */
const CURATE_VERSION = 2;

export interface CurateOptions extends SourceOptions, QualityRules {
  heldOutFraction: number;
  seed: number;
  onMalformed: 'skip' | 'fail';
  nearDuplicates: { enabled: boolean; threshold: number; permutations: number; shingleWords: number };
  /** A corpus of in-domain text (already resolved to a path), or null for no domain filter. */
  domain: { reference: string | null; quantile: number };
  /** Keep at most this many documents, chosen for diversity; null keeps all. */
  maxDocuments: number | null;
}

export type DropReason = QualityReason | 'malformed' | 'duplicate' | 'nearDuplicate' | 'offDomain' | 'overBudget';

const DROP_REASONS: DropReason[] = [
  'malformed',
  'empty',
  'tooShort',
  'tooLong',
  'repetitive',
  'boilerplate',
  'lowAlpha',
  'duplicate',
  'nearDuplicate',
  'offDomain',
  'overBudget',
];

export interface CurateReport {
  source: string;
  options: CurateOptions;
  files: number;
  documentsIn: number;
  kept: number;
  train: { documents: number; chars: number };
  heldOut: { documents: number; chars: number };
  dropped: Record<DropReason, number>;
  examples: Partial<Record<DropReason, { source: string; why: string; preview: string }[]>>;
  nearDuplicateClusters: { kept: string; duplicates: { source: string; similarity: number }[] }[];
  lsh?: { bands: number; rows: number };
  domain?: { threshold: number; referenceDocuments: number; reference: { min: number; median: number; max: number } };
  seconds: number;
}

export interface CuratedDataset {
  id: string; // sha256 of the split's content and options: same input, same id
  dir: string; // holds train.jsonl, heldout.jsonl, report.json
  report: CurateReport;
  reused: boolean; // an unchanged input's earlier result was returned
}

/** How a curation run is watched and bounded; none of it changes the result (nor the dataset id). */
export interface CurateRun {
  /** Folders the corpus and reference must lie in (symlinks resolved); undefined: anywhere. */
  roots?: string[];
  /** Progress, at most every PROGRESS_DOCUMENTS documents or PROGRESS_MS (for heartbeats). */
  onProgress?: (p: CurateProgress) => void;
  /** Aborting stops the run between documents with the signal's reason; nothing is left under the dataset's name. */
  signal?: AbortSignal;
}

export interface CurateProgress {
  stage: 'reference' | 'filter' | 'split';
  documents: number;
  bytes: number;
}

const PROGRESS_DOCUMENTS = 1000;
const PROGRESS_MS = 2000;

/** Calls onProgress every PROGRESS_DOCUMENTS documents or PROGRESS_MS, whichever comes first, and checks the signal. */
class ProgressTicker {
  private documents = 0;
  private bytes = 0;
  private lastDocuments = 0;
  private lastTime = performance.now();

  constructor(
    private readonly run: CurateRun,
    private readonly stage: CurateProgress['stage'],
  ) {}

  tick(text: string | undefined): void {
    this.run.signal?.throwIfAborted();
    this.documents += 1;
    this.bytes += text === undefined ? 0 : Buffer.byteLength(text);
    if (!this.run.onProgress) return;
    const now = performance.now();
    if (this.documents - this.lastDocuments >= PROGRESS_DOCUMENTS || now - this.lastTime >= PROGRESS_MS) {
      this.lastDocuments = this.documents;
      this.lastTime = now;
      this.run.onProgress({ stage: this.stage, documents: this.documents, bytes: this.bytes });
    }
  }
}

const MAX_EXAMPLES = 3;
const MAX_CLUSTERS = 20;

export async function curate(
  corpusPath: string,
  outRoot: string,
  opts: CurateOptions,
  run: CurateRun = {},
): Promise<CuratedDataset> {
  const t0 = performance.now();
  run.signal?.throwIfAborted();
  const files = await listCorpusFiles(corpusPath, opts.format, { roots: run.roots, field: 'corpus.path' });
  const refFiles = opts.domain.reference
    ? await listCorpusFiles(opts.domain.reference, 'auto', { roots: run.roots, field: 'curate.domain.reference' })
    : [];
  const fingerprint = inputFingerprint(files, refFiles, opts);
  const cached = await reuse(outRoot, fingerprint);
  if (cached) return cached;

  const tmp = path.join(outRoot, `.tmp-${process.pid}-${Date.now()}`);
  await fs.mkdir(tmp, { recursive: true });
  try {
    const report = emptyReport(corpusPath, opts, files.length);
    const domain = opts.domain.reference
      ? await buildDomainScorer(refFiles, opts, report, new ProgressTicker(run, 'reference'))
      : undefined;
    const { digests, sketches } = await filterPass(
      files,
      opts,
      domain,
      report,
      path.join(tmp, 'kept.jsonl'),
      new ProgressTicker(run, 'filter'),
    );
    report.kept = digests.length;

    // Under a budget, keep a diverse subset; otherwise everything that passed.
    let selected: Set<number> | undefined;
    if (opts.maxDocuments !== null && digests.length > opts.maxDocuments) {
      selected = new Set(farthestFirst(sketches, opts.maxDocuments, 0));
      report.dropped.overBudget = digests.length - selected.size;
    }
    const id = await splitPass(
      path.join(tmp, 'kept.jsonl'),
      tmp,
      selected,
      opts,
      report,
      new ProgressTicker(run, 'split'),
    );
    run.signal?.throwIfAborted(); // the last moment an abort can stop the dataset from appearing
    await fs.rm(path.join(tmp, 'kept.jsonl'));
    report.seconds = (performance.now() - t0) / 1000;
    await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    const dir = path.join(outRoot, id);
    if (await exists(dir)) await fs.rm(tmp, { recursive: true, force: true });
    else await fs.rename(tmp, dir);
    await fs.mkdir(path.join(outRoot, 'inputs'), { recursive: true });
    await fs.writeFile(path.join(outRoot, 'inputs', `${fingerprint}.json`), JSON.stringify({ id }) + '\n');
    return { id, dir, report, reused: false };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Pass 1, streaming: every rule but the budget; survivors go to `keptFile` in input order. */
async function filterPass(
  files: CorpusFile[],
  opts: CurateOptions,
  domain: DomainScorer | undefined,
  report: CurateReport,
  keptFile: string,
  progress: ProgressTicker,
) {
  const out = await fs.open(keptFile, 'w');
  const seen = new Set<string>();
  const digests: string[] = [];
  const sketches: Float32Array[] = [];
  const hasher = opts.nearDuplicates.enabled ? new MinHasher({ ...opts.nearDuplicates, seed: opts.seed }) : undefined;
  const index = hasher
    ? new NearDuplicateIndex(opts.nearDuplicates.threshold, opts.nearDuplicates.permutations)
    : undefined;
  if (index) report.lsh = { bands: index.bands, rows: index.rows };
  const sources: string[] = []; // by near-dup index id, for clusters
  const clusters = new Map<number, { source: string; similarity: number }[]>();
  const drop = (reason: DropReason, source: string, why: string, text = '') => {
    report.dropped[reason] += 1;
    const list = (report.examples[reason] ??= []);
    if (list.length < MAX_EXAMPLES) list.push({ source, why, preview: text.slice(0, 160) });
  };
  try {
    for (const file of files) {
      for await (const doc of readDocuments(file, opts)) {
        progress.tick(doc.text);
        report.documentsIn += 1;
        if (doc.malformed !== undefined) {
          if (opts.onMalformed === 'fail')
            throw new CorpusError(
              `${doc.source}: ${doc.malformed} (curate.onMalformed is 'fail'; set it to 'skip' to drop and count such documents)`,
            );
          drop('malformed', doc.source, doc.malformed);
          continue;
        }
        const text = normalise(doc.text ?? '');
        const bad = checkQuality(text, opts);
        if (bad) {
          drop(bad.reason, doc.source, bad.why, text);
          continue;
        }
        const digest = createHash('sha256').update(text).digest('hex');
        if (seen.has(digest)) {
          drop('duplicate', doc.source, 'exact duplicate of an earlier document', text);
          continue;
        }
        if (domain) {
          const s = domain.score(text);
          if (s < domain.threshold) {
            drop('offDomain', doc.source, `domain similarity ${s.toFixed(3)} < ${domain.threshold.toFixed(3)}`, text);
            continue;
          }
        }
        if (hasher && index) {
          const sig = hasher.signature(text);
          const match = index.query(sig);
          if (match) {
            drop(
              'nearDuplicate',
              doc.source,
              `~${(100 * match.similarity).toFixed(0)}% similar to ${sources[match.id]}`,
              text,
            );
            const c = clusters.get(match.id) ?? [];
            c.push({ source: doc.source, similarity: match.similarity });
            clusters.set(match.id, c);
            continue;
          }
          sources[index.insert(sig)] = doc.source;
        }
        seen.add(digest);
        digests.push(digest);
        if (opts.maxDocuments !== null) sketches.push(sketch(text));
        await out.write(JSON.stringify({ text, digest }) + '\n');
      }
    }
  } finally {
    await out.close();
  }
  report.nearDuplicateClusters = [...clusters]
    .sort((a, b) => b[1].length - a[1].length)
    .slice(0, MAX_CLUSTERS)
    .map(([id, duplicates]) => ({ kept: sources[id], duplicates: duplicates.slice(0, 10) }));
  return { digests, sketches };
}

/** Pass 2, streaming: the selected documents to train.jsonl / heldout.jsonl; returns the dataset id. */
async function splitPass(
  keptFile: string,
  dir: string,
  selected: Set<number> | undefined,
  opts: CurateOptions,
  report: CurateReport,
  progress: ProgressTicker,
): Promise<string> {
  const train = await fs.open(path.join(dir, 'train.jsonl'), 'w');
  const heldOut = await fs.open(path.join(dir, 'heldout.jsonl'), 'w');
  const id = createHash('sha256').update(JSON.stringify({ v: CURATE_VERSION, opts }));
  try {
    let i = -1;
    for await (const line of readline.createInterface({ input: createReadStream(keptFile), crlfDelay: Infinity })) {
      i += 1;
      progress.tick(line);
      if (!line || (selected && !selected.has(i))) continue;
      const { text, digest } = JSON.parse(line) as { text: string; digest: string };
      id.update(digest);
      const toHeldOut = isHeldOut(digest, opts.seed, opts.heldOutFraction);
      const side = toHeldOut ? report.heldOut : report.train;
      side.documents += 1;
      side.chars += text.length;
      await (toHeldOut ? heldOut : train).write(JSON.stringify({ text }) + '\n');
    }
  } finally {
    await train.close();
    await heldOut.close();
  }
  if (report.train.documents === 0 || report.heldOut.documents === 0) {
    throw new CorpusError(
      `corpus.path '${report.source}': after curation ${report.train.documents} train and ${report.heldOut.documents} held-out documents remain ` +
        `(read ${report.documentsIn} in ${report.files} files; dropped ${JSON.stringify(nonZero(report.dropped))}); both splits need at least one document`,
    );
  }
  return id.digest('hex').slice(0, 32);
}

async function buildDomainScorer(
  refFiles: CorpusFile[],
  opts: CurateOptions,
  report: CurateReport,
  progress: ProgressTicker,
): Promise<DomainScorer> {
  const texts: string[] = [];
  for (const f of refFiles) {
    for await (const doc of readDocuments(f, { format: f.format, textField: opts.textField })) {
      progress.tick(doc.text);
      const t = doc.text === undefined ? '' : normalise(doc.text);
      if (t.length >= opts.minChars) texts.push(t);
    }
  }
  const scorer = DomainScorer.fromReference(texts, { quantile: opts.domain.quantile });
  report.domain = { threshold: scorer.threshold, referenceDocuments: texts.length, reference: scorer.referenceScores };
  return scorer;
}

/** Deterministic split by content: a document's side depends only on its text and the seed. */
export function isHeldOut(digestHex: string, seed: number, fraction: number): boolean {
  const h = createHash('sha256').update(`${seed}:${digestHex}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < fraction;
}

/** What the result depends on: the files (by path, size and modification time) and the options. */
function inputFingerprint(files: CorpusFile[], refFiles: CorpusFile[], opts: CurateOptions): string {
  const describe = (fs_: CorpusFile[]) => fs_.map((f) => [path.resolve(f.path), f.size, f.mtimeMs]);
  return createHash('sha256')
    .update(JSON.stringify({ v: CURATE_VERSION, files: describe(files), ref: describe(refFiles), opts }))
    .digest('hex')
    .slice(0, 32);
}

async function reuse(outRoot: string, fingerprint: string): Promise<CuratedDataset | undefined> {
  try {
    const { id } = JSON.parse(await fs.readFile(path.join(outRoot, 'inputs', `${fingerprint}.json`), 'utf8')) as {
      id: string;
    };
    const dir = path.join(outRoot, id);
    const report = JSON.parse(await fs.readFile(path.join(dir, 'report.json'), 'utf8')) as CurateReport;
    await fs.access(path.join(dir, 'train.jsonl'));
    await fs.access(path.join(dir, 'heldout.jsonl'));
    return { id, dir, report, reused: true };
  } catch {
    return undefined;
  }
}

function emptyReport(source: string, options: CurateOptions, files: number): CurateReport {
  return {
    source,
    options,
    files,
    documentsIn: 0,
    kept: 0,
    train: { documents: 0, chars: 0 },
    heldOut: { documents: 0, chars: 0 },
    dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
    examples: {},
    nearDuplicateClusters: [],
    seconds: 0,
  };
}

export function nonZero(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}

/** Reads the texts of a curated .jsonl split. */
export async function readSplit(file: string): Promise<string[]> {
  const out: string[] = [];
  const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) if (line) out.push((JSON.parse(line) as { text: string }).text);
  return out;
}

/** A report as a person reads it (`minerflow curate --report`). */
export function formatReport(r: CurateReport, id?: string): string {
  const lines = [
    `dataset ${id ?? ''} from ${r.source}: ${r.documentsIn} documents in ${r.files} files → ${r.train.documents} train + ${r.heldOut.documents} held-out (${r.seconds.toFixed(1)} s)`,
    'dropped:',
    ...DROP_REASONS.filter((k) => r.dropped[k] > 0).map(
      (k) =>
        `  ${k.padEnd(14)} ${String(r.dropped[k]).padStart(7)}   e.g. ${r.examples[k]?.[0] ? `${r.examples[k]![0].source}: ${r.examples[k]![0].why}` : ''}`,
    ),
  ];
  if (r.domain)
    lines.push(
      `domain filter: similarity ≥ ${r.domain.threshold.toFixed(3)} (reference of ${r.domain.referenceDocuments} docs scores ${r.domain.reference.min.toFixed(3)}…${r.domain.reference.max.toFixed(3)}, median ${r.domain.reference.median.toFixed(3)})`,
    );
  if (r.lsh)
    lines.push(
      `near-duplicates: MinHash ${r.options.nearDuplicates.permutations} permutations, LSH ${r.lsh.bands} bands × ${r.lsh.rows} rows, threshold ${r.options.nearDuplicates.threshold}`,
    );
  for (const c of r.nearDuplicateClusters.slice(0, 5))
    lines.push(
      `  cluster of ${c.duplicates.length + 1}: ${c.kept} ← ${c.duplicates
        .map((d) => d.source)
        .slice(0, 3)
        .join(', ')}${c.duplicates.length > 3 ? ', …' : ''}`,
    );
  return lines.join('\n');
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
