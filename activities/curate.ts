// Stage 1, curate (control queue): corpus → normalised, de-duplicated train / held-out split in the store.
import * as path from 'node:path';
import { cancellationSignal, heartbeat, log } from '@temporalio/activity';
import { CorpusSchema, CurateSchema, parseOrExplain, type CorpusInput, type CurateInput } from '../common/config';
import type { DatasetRef } from '../common/types';
import { curate, nonZero, type CurateRun } from '../curation/curate';
import { curationPlan } from '../infra/runtime';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import { mapErrors } from './errors';

export interface CurateActivityInput {
  corpus: CorpusInput;
  curate: CurateInput;
}

/**
 * Curates a corpus into the store and returns its reference: the activity's work, also what
 * `minerflow lr-find` calls outside an activity. `run` carries progress and cancellation.
 */
export async function curateIntoStore(
  settings: Settings,
  store: CheckpointStore,
  corpus: CorpusInput,
  options: CurateInput,
  run: Omit<CurateRun, 'roots'> = {},
): Promise<DatasetRef> {
  const plan = await curationPlan(corpus, options, settings);
  const ds = await curate(plan.source, path.join(settings.dataDir, 'datasets'), plan.opts, {
    ...run,
    roots: plan.roots,
  });
  const key = `datasets/${ds.id}`;
  for (const f of ['train.jsonl', 'heldout.jsonl', 'report.json'])
    await store.put(`${key}/${f}`, path.join(ds.dir, f), { immutable: true });
  const r = ds.report;
  return {
    id: ds.id,
    trainKey: `${key}/train.jsonl`,
    heldOutKey: `${key}/heldout.jsonl`,
    reportKey: `${key}/report.json`,
    trainDocuments: r.train.documents,
    heldOutDocuments: r.heldOut.documents,
    documentsIn: r.documentsIn,
    dropped: nonZero(r.dropped),
    reused: ds.reused,
  };
}

export function makeCurate(settings: Settings, store: CheckpointStore) {
  return async function curateCorpus(input: CurateActivityInput): Promise<DatasetRef> {
    return mapErrors(async () => {
      const corpus = parseOrExplain(CorpusSchema, input.corpus, 'curate input corpus');
      const opts = parseOrExplain(CurateSchema, input.curate, 'curate input options');
      heartbeat({ stage: 'reading corpus' });
      // Heartbeats carry progress; the signal stops an attempt that timed out or was cancelled, so it
      // does not keep reading beside its retry.
      const ds = await curateIntoStore(settings, store, corpus, opts, {
        onProgress: (p) => heartbeat(p),
        signal: cancellationSignal(),
      });
      log.info('curated corpus', {
        dataset: ds.id,
        reused: ds.reused,
        train: ds.trainDocuments,
        heldOut: ds.heldOutDocuments,
        dropped: ds.dropped,
      });
      return ds;
    });
  };
}
