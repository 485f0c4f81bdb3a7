// A Gradients job's data, made ready to train: the dataset fetched, each row formatted by the job's
// dataset_type, empty and over-long examples dropped (counted), a held-out set split off by content
// and seed, train / held-out .jsonl and a report put into the checkpoint store. The result's id is
// a content address (file bytes, task type, dataset_type, options): an unchanged input reuses the
// earlier preparation. Plain domain code: the trainingJob workflow calls it from an activity.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DatasetRef } from '../../common/types';
import { isHeldOut } from '../../curation/curate';
import type { PreferenceExample, SftExample } from '../../finetune/examples';
import { FormatError, rowFormatter } from '../../finetune/format';
import type { CheckpointStore } from '../../infra/store/store';
import { DatasetError, fetchDatasetFile, parseDataset, type FetchOptions, type FileFormat } from './dataset';
import type { TaskType } from './protocol';

/** Bump when the output for the same input changes, so earlier preparations are not reused. */
export const PREPARE_VERSION = 1;

export interface PrepareJobDataInput {
  /** For messages only: the same data for two tasks is one preparation. */
  taskId: string;
  taskType: TaskType;
  /** The train request's `dataset`: URL, s3:// URI or local path. */
  dataset: string;
  /** The train request's `dataset_type`, as sent (parsed here for taskType). */
  datasetType: Record<string, unknown>;
  fileFormat: FileFormat;
  /** Share of examples held out for evaluation; default 0.1 (G.O.D's TRAIN_TEST_SPLIT_PERCENTAGE). */
  heldOutFraction?: number;
  seed?: number;
  /** Examples longer than this many characters (all parts together) are dropped; default 32 000. */
  maxChars?: number;
  /** At most this many held-out examples (evaluation time stays bounded); the rest train. Default 1000. */
  maxHeldOut?: number;
}

export interface PrepareDeps {
  store: CheckpointStore;
  fetch: FetchOptions;
  /** Called at each stage, e.g. to heartbeat from the activity. */
  onProgress?: (p: { stage: 'fetching' | 'formatting' | 'storing'; rows?: number }) => void;
}

export type PrepareDropReason = 'malformed' | 'empty' | 'tooLong';

export interface PrepareReport {
  version: number;
  taskType: TaskType;
  kind: 'sft' | 'preference';
  dataset: { sha256: string; bytes: number; fileFormat: FileFormat };
  rowsIn: number;
  train: number;
  heldOut: number;
  dropped: Record<PrepareDropReason, number>;
  /** The first few malformed rows' errors, to show what is wrong with the data. */
  errors: string[];
  options: { heldOutFraction: number; seed: number; maxChars: number; maxHeldOut: number };
}

/** Fetches, formats, splits and stores a job's data; returns the store keys and counts. */
export async function prepareJobData(input: PrepareJobDataInput, deps: PrepareDeps): Promise<DatasetRef> {
  const options = {
    heldOutFraction: input.heldOutFraction ?? 0.1,
    seed: input.seed ?? 0,
    maxChars: input.maxChars ?? 32_000,
    maxHeldOut: input.maxHeldOut ?? 1000,
  };
  if (!(options.heldOutFraction > 0 && options.heldOutFraction < 1))
    throw new DatasetError(`heldOutFraction ${options.heldOutFraction} must be between 0 and 1 (exclusive)`);
  if (!(options.maxChars > 0)) throw new DatasetError(`maxChars ${options.maxChars} must be positive`);
  if (!(Number.isInteger(options.maxHeldOut) && options.maxHeldOut >= 1))
    throw new DatasetError(`maxHeldOut ${options.maxHeldOut} must be a whole number ≥ 1`);
  const formatter = rowFormatter(input.taskType, input.datasetType); // bad dataset_type fails before the download

  deps.onProgress?.({ stage: 'fetching' });
  const file = await fetchDatasetFile(input.dataset, input.fileFormat, deps.fetch);
  try {
    const id = createHash('sha256')
      .update(
        JSON.stringify({
          v: PREPARE_VERSION,
          file: file.sha256,
          fileFormat: input.fileFormat,
          taskType: input.taskType,
          datasetType: sortedKeys(input.datasetType),
          options,
        }),
      )
      .digest('hex')
      .slice(0, 32);
    const key = `datasets/${id}`;
    const ref = (report: PrepareReport, reused: boolean): DatasetRef => ({
      id,
      kind: report.kind,
      trainKey: `${key}/train.jsonl`,
      heldOutKey: `${key}/heldout.jsonl`,
      reportKey: `${key}/report.json`,
      documentsIn: report.rowsIn,
      trainDocuments: report.train,
      heldOutDocuments: report.heldOut,
      dropped: Object.fromEntries(Object.entries(report.dropped).filter(([, n]) => n > 0)),
      reused,
    });
    if (await deps.store.exists(`${key}/report.json`)) {
      const report = JSON.parse(await fs.readFile(await deps.store.get(`${key}/report.json`), 'utf8')) as PrepareReport;
      return ref(report, true);
    }

    const rows = parseDataset(await fs.readFile(file.path, 'utf8'), input.fileFormat, `dataset '${input.dataset}'`);
    deps.onProgress?.({ stage: 'formatting', rows: rows.length });
    const dropped: Record<PrepareDropReason, number> = { malformed: 0, empty: 0, tooLong: 0 };
    const errors: string[] = [];
    const kept: { line: string; digest: string }[] = [];
    rows.forEach((row, i) => {
      let example: SftExample | PreferenceExample;
      try {
        example = formatter.format(row, i + 1);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        dropped.malformed++;
        if (errors.length < 5) errors.push(e.message);
        return;
      }
      const reason = dropReason(example, options.maxChars);
      if (reason) return void dropped[reason]++;
      const line = JSON.stringify(example);
      kept.push({ line, digest: createHash('sha256').update(line).digest('hex') });
    });
    if (kept.length < 2) {
      const why = errors.length ? `; first errors: ${errors.join(' | ')}` : '';
      throw new DatasetError(
        `task ${input.taskId}: dataset '${input.dataset}': ${kept.length} usable examples of ${rows.length} rows (dropped ${JSON.stringify(dropped)}); at least 2 are needed for a train and a held-out set${why}`,
      );
    }
    const train = kept.filter((k) => !isHeldOut(k.digest, options.seed, options.heldOutFraction));
    const heldOut = kept.filter((k) => isHeldOut(k.digest, options.seed, options.heldOutFraction));
    // A small dataset may hash no example to the held-out side (or all): move the extreme one over.
    if (heldOut.length === 0) heldOut.push(train.splice(indexOfMin(train), 1)[0]);
    if (train.length === 0) train.push(heldOut.splice(indexOfMin(heldOut), 1)[0]);
    // Over the cap, the held-out examples with the highest digests train instead (seed-independent order is fine:
    // which examples were held out at all already depends on the seed).
    if (heldOut.length > options.maxHeldOut) {
      heldOut.sort((a, b) => (a.digest < b.digest ? -1 : 1));
      train.push(...heldOut.splice(options.maxHeldOut));
    }

    const report: PrepareReport = {
      version: PREPARE_VERSION,
      taskType: input.taskType,
      kind: formatter.kind,
      dataset: { sha256: file.sha256, bytes: file.bytes, fileFormat: input.fileFormat },
      rowsIn: rows.length,
      train: train.length,
      heldOut: heldOut.length,
      dropped,
      errors,
      options,
    };
    await fs.mkdir(deps.fetch.downloadDir, { recursive: true });
    deps.onProgress?.({ stage: 'storing', rows: train.length + heldOut.length });
    const dir = await fs.mkdtemp(path.join(deps.fetch.downloadDir, '.prepare-'));
    try {
      const files: [string, string][] = [
        ['train.jsonl', train.map((k) => k.line + '\n').join('')],
        ['heldout.jsonl', heldOut.map((k) => k.line + '\n').join('')],
        ['report.json', JSON.stringify(report, null, 2) + '\n'],
      ];
      // report.json last: its presence is what marks a preparation complete.
      for (const [name, text] of files) {
        await fs.writeFile(path.join(dir, name), text);
        await deps.store.put(`${key}/${name}`, path.join(dir, name), { immutable: true });
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    return ref(report, false);
  } finally {
    if (file.downloaded) await fs.rm(file.path, { force: true });
  }
}

function dropReason(example: SftExample | PreferenceExample, maxChars: number): PrepareDropReason | undefined {
  if ('parts' in example) {
    if (!example.parts.some((p) => p.train && !blank(p.text))) return 'empty';
    return example.parts.reduce((n, p) => n + p.text.length, 0) > maxChars ? 'tooLong' : undefined;
  }
  if (blank(example.chosen) || blank(example.rejected)) return 'empty';
  const longest = example.prompt.length + Math.max(example.chosen.length, example.rejected.length);
  return longest > maxChars ? 'tooLong' : undefined;
}

/** No text besides whitespace and template tokens such as <|im_end|>. */
function blank(text: string): boolean {
  return text.replace(/<\|[^|\s]*\|>/g, '').trim() === '';
}

function indexOfMin(xs: { digest: string }[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i].digest < xs[best].digest) best = i;
  return best;
}

/** Key order must not change the content address. */
function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortedKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}
