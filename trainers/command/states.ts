// An external trainer's checkpoints as training states in the store, so a segment retried on another
// worker (or a backtrack) starts from them: runs/<runId>/command/segment-<n>/<checkpoint name>/
// holds the files and checkpoint.json (name, step, files, content hash); latest.json in the segment
// folder names its newest state, which a crashed segment's next attempt resumes from.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { StateRef } from '../../common/types';
import type { CheckpointStore } from '../../infra/store/store';
import type { FoundCheckpoint } from './checkpoints';

export const CHECKPOINT_META = 'checkpoint.json';
export const LATEST = 'latest.json';
/** A checkpoint folder's subfolder with its averaged (EMA) weights in the same layout, when the trainer keeps them. */
export const EMA_DIR = 'ema';

export interface CheckpointMeta {
  name: string;
  step: number;
  files: string[]; // relative to the checkpoint folder, sorted
  contentHash: string; // sha256 over each file's name and bytes, in `files` order
}

export function segmentKey(runId: string, segment: number): string {
  return `runs/${runId}/command/segment-${segment}`;
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out.sort();
}

/** sha256 over (name, NUL, bytes, NUL) of each file: a file changed after training changes it. */
export async function contentHash(dir: string, files: string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f + '\0');
    for await (const chunk of createReadStream(path.join(dir, f))) h.update(chunk as Buffer);
    h.update('\0');
  }
  return h.digest('hex');
}

/** Copies a checkpoint folder into the store under `segKey` and makes it the segment's latest state. */
export async function publishCheckpoint(
  store: CheckpointStore,
  segKey: string,
  ckpt: FoundCheckpoint,
  scratch: string,
): Promise<StateRef> {
  const files = await listFiles(ckpt.dir);
  const meta: CheckpointMeta = {
    name: ckpt.name,
    step: ckpt.step,
    files,
    contentHash: await contentHash(ckpt.dir, files),
  };
  const key = `${segKey}/${ckpt.name}`;
  for (const f of files) await store.put(`${key}/${f}`, path.join(ckpt.dir, f), { immutable: true });
  const state: StateRef = { key, step: ckpt.step, modelHash: meta.contentHash };
  await fs.mkdir(scratch, { recursive: true });
  const metaFile = path.join(scratch, `${ckpt.name}.json`);
  await fs.writeFile(metaFile, JSON.stringify(meta));
  await store.put(`${key}/${CHECKPOINT_META}`, metaFile, { immutable: true }); // last: its presence means complete
  const latestFile = path.join(scratch, LATEST);
  await fs.writeFile(latestFile, JSON.stringify(state));
  await store.put(`${segKey}/${LATEST}`, latestFile);
  return state;
}

/** The newest state a segment's earlier attempts published, if any. */
export async function latestState(store: CheckpointStore, segKey: string): Promise<StateRef | undefined> {
  if (!(await store.exists(`${segKey}/${LATEST}`))) return undefined;
  return JSON.parse(await fs.readFile(await store.get(`${segKey}/${LATEST}`), 'utf8')) as StateRef;
}

/** Copies a state out of the store into `parent/<its checkpoint name>/`, checking its content hash. */
export async function restoreCheckpoint(
  store: CheckpointStore,
  state: StateRef,
  parent: string,
): Promise<FoundCheckpoint> {
  const meta = JSON.parse(
    await fs.readFile(await store.get(`${state.key}/${CHECKPOINT_META}`), 'utf8'),
  ) as CheckpointMeta;
  const dir = path.join(parent, meta.name);
  for (const f of meta.files) {
    await fs.mkdir(path.dirname(path.join(dir, f)), { recursive: true });
    await fs.copyFile(await store.get(`${state.key}/${f}`), path.join(dir, f));
  }
  const actual = await contentHash(dir, meta.files);
  if (actual !== state.modelHash)
    throw new StateChangedError(
      `checkpoint ${state.key} hashes to ${actual}, not ${state.modelHash}: it changed after training`,
    );
  return { name: meta.name, dir, version: 0, step: meta.step };
}

export class StateChangedError extends Error {
  override name = 'CheckpointError'; // permanent: the same bytes would be read again
}
