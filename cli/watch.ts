// Following a cycle: the progress line while it trains, its status, and the result at the end.
import { promises as fs } from 'node:fs';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import * as path from 'node:path';
import type { SegmentResult } from '../common/types';
import { openStore } from '../infra/runtime';
import type { Settings } from '../infra/settings';
import { workflowUrl } from '../infra/temporal';
import type { CycleResult, CycleStatus } from '../subnets/connito/types';
import type { TrainProgress } from '../trainers/trainer';
import { type miningCycle, statusQuery } from '../workflows';
import { fmt } from '../workflows/training-state';
import { lossCurvesSvg } from './plot';

export function printStarted(settings: Settings, handle: WorkflowHandle): void {
  console.log(`minerflow: started miningCycle ${handle.workflowId}`);
  console.log(`           ${workflowUrl(settings, handle.workflowId)}`);
}

/** Follows a cycle to its end: phase changes, and one progress bar for the whole plan (every segment, extensions included). */
export async function watchCycle(handle: WorkflowHandle<typeof miningCycle>): Promise<CycleResult> {
  const tty = !!process.stdout.isTTY;
  let lastPhase = '';
  let lastDecile = -1;
  const done = handle.result();
  let finished = false;
  void done.then(
    () => (finished = true),
    () => (finished = true),
  );
  const bars = tty
    ? new MultiBar(
        {
          format: 'plan [{bar}] {percentage}% step {value}/{total} | {detail}',
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          barsize: 30,
        },
        Presets.shades_classic,
      )
    : undefined;
  let bar: SingleBar | undefined;
  try {
    while (!finished) {
      const [status, desc] = await Promise.all([
        handle.query(statusQuery).catch(() => undefined),
        handle.describe().catch(() => undefined),
      ]);
      if (status && status.phase !== lastPhase) {
        const line = `[${status.phase}] ${status.events.at(-1)?.replace(/^\S+ /, '') ?? ''}`;
        if (bars) bars.log(`${line}\n`);
        else console.log(line);
        lastPhase = status.phase;
      }
      const p = desc && trainProgress(desc.raw.pendingActivities ?? []);
      if (status) {
        const step = p?.step ?? status.stepsDone;
        const detail = p ? progressDetail(p) : status.phase;
        if (bars) {
          bar ??= bars.create(status.plannedSteps, 0, { detail });
          bar.setTotal(status.plannedSteps);
          bar.update(step, { detail });
        } else if (p && Math.floor((10 * step) / status.plannedSteps) !== lastDecile) {
          lastDecile = Math.floor((10 * step) / status.plannedSteps);
          console.log(progressLine(p, status.plannedSteps));
        }
      }
      await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    }
  } finally {
    bars?.stop();
  }
  return done;
}

export function trainProgress(
  pending: {
    activityType?: { name?: string | null } | null;
    heartbeatDetails?: { payloads?: unknown[] | null } | null;
  }[],
): TrainProgress | undefined {
  const a = pending.find((x) => x.activityType?.name === 'trainSegment');
  const payload = a?.heartbeatDetails?.payloads?.[0];
  if (!payload) return undefined;
  const d = defaultPayloadConverter.fromPayload(payload as never) as TrainProgress;
  return d.stage === 'training' ? d : undefined;
}

function progressDetail(p: TrainProgress): string {
  return `segment ${p.segment} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(1)} ${Math.round(p.tokensPerSec)} tok/s`;
}

/** One line of training progress: the step against the whole plan (`plannedSteps`), not the running segment's end. */
export function progressLine(p: TrainProgress, plannedSteps: number): string {
  const width = 30;
  const filled = Math.max(0, Math.min(width, Math.round((width * p.step) / plannedSteps)));
  return `plan [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${p.step}/${plannedSteps} | ${progressDetail(p)}`;
}

export function printStatus(s: CycleStatus): void {
  console.log(
    `phase: ${s.phase}${s.paused ? ' (paused)' : ''}   step ${s.stepsDone}/${s.plannedSteps}${s.round !== undefined ? `   round ${s.round}` : ''}`,
  );
  if (s.trainingDeadline)
    console.log(
      `training deadline: ${new Date(s.trainingDeadline).toISOString()} (commit 1 opens ${s.plan ? new Date(s.plan.commit1.opensAt).toISOString() : '?'})`,
    );
  for (const g of s.segments)
    console.log(
      `  segment ${g.segment}${g.attempt > 1 ? ` (attempt ${g.attempt})` : ''}: steps ${g.startStep}→${g.endStep}  train ${fmt(g.trainLoss)}  held-out ${fmt(g.heldOutLoss)}  ${Math.round(g.tokensPerSec)} tok/s`,
    );
  for (const d of s.decisions) console.log(`  after segment ${d.afterSegment}: ${d.action} — ${d.reason}`);
  if (s.best) console.log(`best: step ${s.best.step}, held-out ${fmt(s.best.heldOutLoss)} (${s.best.key})`);
  if (s.checkpoint)
    console.log(
      `checkpoint: ${s.checkpoint.hash} held-out loss ${fmt(s.checkpoint.heldOutLoss)} (untrained ${fmt(s.checkpoint.baselineLoss)})`,
    );
  for (const m of s.missedWindows) console.log(`MISSED: ${m}`);
  if (s.score) console.log(`score: ${JSON.stringify(s.score)}`);
  console.log('events:');
  for (const e of s.events) console.log(`  ${e}`);
}

export function printResult(settings: Settings, r: CycleResult): void {
  const s = r.score;
  console.log('\nminerflow: cycle complete');
  console.log(
    `  dataset         ${r.dataset.id}: ${r.dataset.trainDocuments} train / ${r.dataset.heldOutDocuments} held-out documents, dropped ${JSON.stringify(r.dataset.dropped)}`,
  );
  console.log(
    `  training        best at step ${r.training.steps} of ${r.training.plannedSteps} planned (${r.training.segments} segments, ${r.training.stepsRun} steps run), ${Math.round(r.training.tokensPerSec)} tok/s on ${r.training.backend}, train loss ${r.training.trainLoss.toFixed(4)}`,
  );
  for (const d of r.decisions.filter((x) => x.action !== 'continue'))
    console.log(`  decision        after segment ${d.afterSegment}: ${d.action} — ${d.reason}`);
  for (const m of r.missedWindows) console.log(`  MISSED          ${m}`);
  const ema =
    r.checkpoint.emaHeldOutLoss !== undefined
      ? `; raw ${fmt(r.checkpoint.rawHeldOutLoss)}, EMA ${fmt(r.checkpoint.emaHeldOutLoss)}`
      : '';
  console.log(
    `  held-out loss   ${fmt(r.checkpoint.heldOutLoss)} nats/token = ${r.checkpoint.heldOutBitsPerByte?.toFixed(3)} bits/byte (${r.checkpoint.tokenizer} ${r.checkpoint.vocabSize}), ${r.checkpoint.weights} weights (untrained model: ${fmt(r.checkpoint.baselineLoss)}${ema})`,
  );
  if (r.distribute)
    console.log(
      r.distribute.status === 'warm'
        ? `  distribute      started from the validators' global model v${r.distribute.globalVer} ${r.distribute.hash} (${r.distribute.repo}@${r.distribute.revision})`
        : `  distribute      trained from the cycle's own start: ${r.distribute.reason}${r.distribute.excluded.map((e) => `\n                  ${e.hotkey}: ${e.reason}`).join('')}`,
    );
  console.log(`  checkpoint      ${r.checkpoint.hash} in ${r.checkpoint.location}/${r.checkpoint.key}`);
  if (r.checkpoint.hub)
    console.log(
      `  published       ${r.checkpoint.hub.file} to ${r.checkpoint.hub.repo}@${r.checkpoint.hub.commitSha} (expert group ${r.checkpoint.hub.expertGroup})`,
    );
  console.log(`  commits         ${r.commits.map((c) => `${c.phase}@block ${c.block} (${c.bytes} B)`).join(', ')}`);
  if (s.status === 'scored') {
    console.log(
      `  score           round ${s.round}: validator loss ${s.validatorLoss?.toFixed(4)}, raw score ${s.rawScore?.toFixed(4)}, rank ${s.rank ?? '-'}, reward ${s.reward}, incentive share ${s.incentiveShare?.toFixed(4)}`,
    );
  } else console.log(`  score           ${s.status}: ${s.reason}`);
  console.log(`  Temporal UI     ${workflowUrl(settings, r.workflowId)}`);
}

/** Training loss by step from the segments' metrics files in the store (a backtrack repeats steps). */
export async function readMetrics(settings: Settings, keys: string[]): Promise<{ step: number; loss: number }[]> {
  const store = openStore(settings.store, settings);
  const out: { step: number; loss: number }[] = [];
  for (const key of keys) {
    const text = await store.get(key).then(
      (f) => fs.readFile(f, 'utf8'),
      () => '',
    );
    for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as { step: number; loss: number });
  }
  return out;
}

/**
 * Writes the cycle's loss curves (training loss by step, held-out loss after each segment) as an
 * SVG under the data folder; returns its path, or undefined before there is anything to draw.
 */
export async function writeLossPlot(
  settings: Settings,
  workflowId: string,
  segments: SegmentResult[],
): Promise<string | undefined> {
  const steps = await readMetrics(
    settings,
    segments.map((s) => s.metricsKey),
  );
  const svg = lossCurvesSvg(workflowId, steps, segments);
  if (!svg) return undefined;
  const file = path.join(settings.dataDir, 'plots', `${workflowId.replace(/[^\w.-]/g, '_')}.svg`);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, svg);
  return file;
}
