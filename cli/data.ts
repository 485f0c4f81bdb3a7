// `minerflow curate`, `minerflow lr-find` and `minerflow wallet create`: the data side without a
// server. lr-find runs the very code the cycle's lrFind activity runs (trainers/tfjs/lr-find.ts)
// on the dataset and tokenizer the cycle would use, kept in the same store.
import * as path from 'node:path';
import type { ModelInput, TrainingInput } from '../common/config';
import type { DatasetRef } from '../common/types';
import { curate, formatReport, nonZero } from '../curation/curate';
import { logger } from '../infra/log';
import { curateIntoStore } from '../activities/curate';
import { curationPlan, openStore } from '../infra/runtime';
import type { Settings } from '../infra/settings';
import { createHotkey } from '../infra/wallet';
import { initBackend } from '../model/backend';
import type { LrFindResult } from '../model/lr-finder';
import type { CycleInput } from '../subnets/connito/config';
import { chosenLr, datasetTokenizer, runRangeTest } from '../trainers/tfjs';
import { readTokens } from '../trainers/tfjs/data';
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
 * What lr-find hands runRangeTest: the cycle's model and training (what the workflow sends the
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

/** The range test as the cycle runs it: same dataset, tokenizer (trainers/tfjs), options and clamp. */
export async function rangeTest(
  settings: Settings,
  cycle: CycleInput,
  overrides: LrFindOverrides = {},
): Promise<{ result: LrFindResult; chosenLr: number; training: TrainingInput; dataset: DatasetRef }> {
  const { model, training } = lrFindInputs(cycle, overrides);
  const store = openStore(settings.store, settings);
  const dataset = await curateIntoStore(settings, store, cycle.corpus, cycle.curate);
  log.info({ dataset: dataset.id, reused: dataset.reused, train: dataset.trainDocuments }, 'curated corpus');
  await initBackend(model.backend, (m) => log.info(m));
  const tokenizer = await datasetTokenizer(path.join(settings.dataDir, 'work'), store, dataset, model); // the trainer's workDir
  const data = await readTokens(store, dataset.trainKey, tokenizer);
  const result = await runRangeTest(model, training, tokenizer, data);
  return { result, chosenLr: chosenLr(training, result.suggestedLr), training, dataset };
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
  const { result: r, chosenLr: chosen, training: t } = await rangeTest(getSettings(), cycle, overrides);
  const f = t.lrFind;
  console.log(
    `smoothed loss while the LR grows from ${r.curve[0].lr.toExponential(1)} to ${r.curve.at(-1)!.lr.toExponential(1)} in ${r.curve.length} of ${f.steps} steps${r.diverged ? ' (stopped: diverged)' : ''}`,
  );
  console.log(
    asciiPlot(
      r.curve.map((p) => p.smoothed),
      { label: 'log LR →' },
    ),
  );
  console.log(
    `suggested LR for ${t.steps} steps: ${r.suggestedLr.toExponential(2)} (lowest loss at ${r.minLossLr.toExponential(2)}, steepest descent at ${r.steepestLr.toExponential(2)})`,
  );
  console.log(
    `chosen training LR: ${chosen.toExponential(2)} (the suggestion clamped to training.lrFind [${f.floor}, ${f.ceiling}], as the cycle chooses it)`,
  );
  if (!f.enabled)
    console.log(
      `note: training.lrFind.enabled is false in this config, so a cycle trains at training.learningRate = ${t.learningRate}; set it to true to use the range test`,
    );
  else if (t.initFrom && !t.finetune)
    console.log(
      `note: training.initFrom is set, so a cycle skips the range test and trains at training.learningRate = ${t.learningRate}`,
    );
}
