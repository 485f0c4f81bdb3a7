// `minerflow curate`, `minerflow lr-find` and `minerflow wallet create`: the data side without a
// server. lr-find makes the very call the cycle's lrFind activity makes (Trainer.findLearningRate
// of the trainer the config names, trainers/) on the dataset the cycle would use, in the same store.
import * as path from 'node:path';
import type { ModelInput, TrainingInput } from '../common/config';
import type { DatasetRef, LrFindReport } from '../common/types';
import { curate, formatReport, nonZero } from '../curation/curate';
import { logger } from '../infra/log';
import { curateIntoStore } from '../activities/curate';
import { curationPlan, openStore } from '../infra/runtime';
import type { Settings } from '../infra/settings';
import { createHotkey } from '../infra/wallet';
import type { CycleInput } from '../subnets/connito/config';
import { createTrainers } from '../trainers';
import { intFlag, loadCycleConfig, numberFlag, parseCommand, str, stringFlag, UsageError } from './args';
import { asciiPlot } from './plot';

const log = logger.child({ module: 'cli' });

export async function curateCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('curate', args, {
    config: { type: 'string' },
    corpus: { type: 'string' },
    out: { type: 'string' },
    report: { type: 'boolean' },
  });
  const corpusPath = stringFlag('corpus', values.corpus);
  const out = stringFlag('out', values.out);
  const { cycle } = await loadCycleConfig(str(values.config));
  const settings = getSettings();
  const corpus = { ...cycle.corpus, ...(corpusPath ? { path: corpusPath } : {}) };
  const plan = await curationPlan(corpus, cycle.curate, settings);
  const ds = await curate(plan.source, path.resolve(out ?? path.join(settings.dataDir, 'datasets')), plan.opts, {
    roots: plan.roots,
  });
  if (values.report) console.log(formatReport(ds.report, ds.id));
  else
    console.log(
      `dataset ${ds.id}: ${ds.report.train.documents} train + ${ds.report.heldOut.documents} held-out documents, dropped ${JSON.stringify(nonZero(ds.report.dropped))}`,
    );
  console.log(`${ds.reused ? 'reused (input unchanged)' : 'written'}: ${ds.dir}`);
}

export async function walletCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'create')
    throw new UsageError(sub === undefined ? "'wallet' needs a command: create" : `unknown 'wallet' command '${sub}'`);
  const { values } = parseCommand('wallet create', rest, { wallet: { type: 'string' }, hotkey: { type: 'string' } });
  const wallet = stringFlag('wallet', values.wallet) ?? 'default';
  const hotkey = stringFlag('hotkey', values.hotkey) ?? 'default';
  const r = await createHotkey(getSettings().walletsDir, wallet, hotkey);
  console.log(`created hotkey ${r.address} in ${r.file}`);
}

/** `--steps`, `--min-lr`, `--max-lr`: the range test's options a run of lr-find overrides. */
export interface LrFindOverrides {
  steps?: number;
  minLr?: number;
  maxLr?: number;
}

/** The flags, validated with the same bounds as training.lrFind in the cycle config. */
export function lrFindOverrides(values: Record<string, string | boolean | undefined>): LrFindOverrides {
  return {
    steps: intFlag('steps', values.steps, 20, 100_000),
    minLr: numberFlag('min-lr', values['min-lr'], 0, 1),
    maxLr: numberFlag('max-lr', values['max-lr'], 0, 10),
  };
}

/**
 * What lr-find hands the trainer: the cycle's model and training (what the workflow sends the
 * lrFind activity), training.lrFind's steps and LR bounds replaced by the flags given.
 */
export function lrFindInputs(
  cycle: CycleInput,
  o: LrFindOverrides = {},
): { model: ModelInput; training: TrainingInput } {
  const f = cycle.training.lrFind;
  const lrFind = { ...f, steps: o.steps ?? f.steps, minLr: o.minLr ?? f.minLr, maxLr: o.maxLr ?? f.maxLr };
  if (!(lrFind.minLr < lrFind.maxLr))
    throw new UsageError(`the range test needs --min-lr < --max-lr (here ${lrFind.minLr} and ${lrFind.maxLr})`);
  return { model: cycle.model, training: { ...cycle.training, lrFind } };
}

/**
 * The range test as the cycle runs it: the activity's call (trainer.findLearningRate) on the trainer
 * the config names, so a command trainer, or fine-tuning from training.initFrom, is tested as in a cycle.
 */
export async function rangeTest(
  settings: Settings,
  cycle: CycleInput,
  overrides: LrFindOverrides = {},
): Promise<{ report: LrFindReport; training: TrainingInput; dataset: DatasetRef }> {
  const { model, training } = lrFindInputs(cycle, overrides);
  const store = openStore(settings.store, settings);
  const dataset = await curateIntoStore(settings, store, cycle.corpus, cycle.curate);
  log.info({ dataset: dataset.id, reused: dataset.reused, train: dataset.trainDocuments }, 'curated corpus');
  const trainer = createTrainers(settings.dataDir, store, log)(cycle.trainer);
  const report = await trainer.findLearningRate(
    // One run id per dataset: the curve in the store is that of the last lr-find on it.
    { runId: `lr-find-${dataset.id.slice(0, 12)}`, dataset, trainer: cycle.trainer, model, training },
    { progress: () => undefined, signal: new AbortController().signal, attempt: 1 },
  );
  return { report, training, dataset };
}

export async function lrFindCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const { values } = parseCommand('lr-find', args, {
    config: { type: 'string' },
    steps: { type: 'string' },
    'min-lr': { type: 'string' },
    'max-lr': { type: 'string' },
  });
  const overrides = lrFindOverrides(values);
  const { cycle } = await loadCycleConfig(str(values.config));
  lrFindInputs(cycle, overrides); // the LR bounds, checked before any work
  const settings = getSettings();
  const { report: r, training: t } = await rangeTest(settings, cycle, overrides);
  const f = t.lrFind;
  console.log(
    `smoothed loss while the LR grows from ${r.curve[0].lr.toExponential(1)} to ${r.curve.at(-1)!.lr.toExponential(1)} in ${r.steps} of ${f.steps} steps${r.diverged ? ' (stopped: diverged)' : ''}`,
  );
  console.log(
    asciiPlot(
      r.curve.map((p) => p.loss),
      { label: 'log LR →' },
    ),
  );
  console.log(
    `suggested LR for ${t.steps} steps: ${r.suggestedLr.toExponential(2)} (lowest loss at ${r.minLossLr.toExponential(2)}, steepest descent at ${r.steepestLr.toExponential(2)})`,
  );
  console.log(
    `chosen training LR: ${r.chosenLr.toExponential(2)} (the suggestion clamped to training.lrFind [${f.floor}, ${f.ceiling}], as the cycle chooses it)`,
  );
  console.log(`every point of the curve: ${r.curveKey} in ${settings.store}`);
  if (!f.enabled)
    console.log(
      `note: training.lrFind.enabled is false in this config, so a cycle trains at training.learningRate = ${t.learningRate}; set it to true to use the range test`,
    );
  else if (t.initFrom && !t.finetune)
    console.log(
      `note: training.initFrom is set, so a cycle skips the range test and trains at training.learningRate = ${t.learningRate}`,
    );
}
