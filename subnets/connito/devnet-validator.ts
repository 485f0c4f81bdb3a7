// The Connito validator the devnet runs: scores each round on its own held-out text (its corpus,
// curated with the default options), the way Connito's validators score miners.
import * as path from 'node:path';
import { CurateSchema } from '../../common/config';
import { curate, readSplit } from '../../curation/curate';
import { curationPlan, openStore } from '../../infra/runtime';
import { logger } from '../../infra/log';
import type { Settings } from '../../infra/settings';
import { openHub } from '../../infra/hub/hub';
import type { DevnetGlobalPublisher } from './devnet-global';
import { createLocalValidator, type LocalValidator } from './validator';

export function makeDevnetValidator(
  settings: Settings,
  log: (msg: string) => void = (m) => logger.info(m),
  publisher?: DevnetGlobalPublisher,
): LocalValidator {
  let heldOut: Promise<string[]> | undefined;
  const score = createLocalValidator({
    heldOutText: () => (heldOut ??= validatorHeldOut(settings)),
    store: () => openStore(settings.store, settings),
    hub: () => openHub(settings.hub),
    evalMaxTokens: 16_384,
    log,
  });
  return async (round, submissions) => {
    const results = await score(round, submissions);
    // The round's best model becomes the next global model (published in the validator phases).
    await publisher
      ?.roundScored(round, submissions, results)
      .catch((err: Error) => log(`devnet validator: could not publish round ${round}'s global model: ${err.message}`));
    return results;
  };
}

async function validatorHeldOut(settings: Settings): Promise<string[]> {
  const { source, opts } = await curationPlan(
    { path: settings.validatorCorpus, format: 'auto', textField: 'text' },
    CurateSchema.parse({}),
    settings.dataDir,
  );
  const ds = await curate(source, path.join(settings.dataDir, 'validator', 'datasets'), opts);
  return readSplit(path.join(ds.dir, 'heldout.jsonl')); // text: each model is scored with its own tokenizer
}
