// The Connito validator the devnet runs: scores each round on its own held-out text (its corpus,
// curated with the default options), the way Connito's validators score miners.
import * as path from 'node:path';
import { CurateSchema } from '../../common/config';
import { curate, readSplit } from '../../curation/curate';
import { curationPlan, openStore } from '../../infra/runtime';
import { logger } from '../../infra/log';
import type { Settings } from '../../infra/settings';
import { openHub } from '../../infra/hub/hub';
import { createLocalValidator, type LocalValidator } from './validator';

export function makeDevnetValidator(
  settings: Settings,
  log: (msg: string) => void = (m) => logger.info(m),
): LocalValidator {
  let heldOut: Promise<string[]> | undefined;
  return createLocalValidator({
    heldOutText: () => (heldOut ??= validatorHeldOut(settings)),
    store: () => openStore(settings.store, settings),
    hub: () => openHub(settings.hub),
    evalMaxTokens: 16_384,
    log,
  });
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
