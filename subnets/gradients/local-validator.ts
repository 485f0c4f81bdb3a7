// A G.O.D-like validator for the demo and tests, doing what a Gradients validator does to a miner
// before release 6.0: it serves each task's dataset file over HTTP and keeps a test split back,
// offers the task (3 s timeout), sends start_training with expected_repo_name for an accepted offer,
// polls get_latest_model_submission until the deadline, checks the model_hash against the repo,
// and scores the submission by its loss on the held-back test split against the base model's
// (G.O.D evaluated test loss; for DPO the DPO loss and preference accuracy against the base).
// A submission missing at the deadline, or whose hash does not match, fails.
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { KeyringPair } from '@polkadot/keyring/types';
import * as tf from '@tensorflow/tfjs-core';
import { checkBaseModel } from '../../finetune/base-model';
import { FinetuneSchema } from '../../finetune/config';
import type { PreferenceExample, SftExample } from '../../finetune/examples';
import { rowFormatter, type Row } from '../../finetune/format';
import { offlineJobData, rowsToFile, type OfflineTask } from '../../finetune/offline-data';
import { encodeExamples, FinetuneRun, type FinetuneEval } from '../../finetune/run';
import type { ModelHub } from '../../infra/hub/hub';
import { MANIFEST_FILE, loadWeights, TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { loadTokenizer } from '../../model/tokenizer';
import type { MinerSubmission, MinerTaskOffer, TaskType } from './protocol';
import { godModelHash } from './publish';
import { ValidatorClient } from './validator-client';

/** One task the validator creates. `data` is absent for tasks it only offers (GRPO, image). */
export interface ValidatorTask {
  taskId: string;
  taskType: TaskType;
  model: string;
  paramsCount: number;
  /** Fractional hours, as G.O.D sends them. */
  hoursToComplete: number;
  data?: { task: OfflineTask; trainRows: number; testRows: number; format: 'json' | 'csv' };
}

export interface TaskScore {
  /** SFT: masked cross-entropy per response token; DPO: the DPO loss against the base. */
  before: number;
  after: number;
  /** DPO only: the share of test pairs whose chosen response gains reward over the base. */
  preferenceAccuracy?: number;
}

export interface TaskOutcome {
  task: ValidatorTask;
  accepted: boolean;
  reason: string;
  /** Epoch ms: when start_training was sent; the deadline counts from it. */
  startedAt: number | null;
  deadline: number | null;
  /** Epoch ms: when the validator first saw the submission (polled every `pollMs`). */
  submittedAt: number | null;
  submission: MinerSubmission | null;
  /** Set when the submission counts: on time, hash verified, scored. */
  score: TaskScore | null;
  failure: string | null;
}

export interface LocalValidatorOptions {
  keypair: KeyringPair;
  minerUrl: string;
  minerHotkey: string;
  hub: ModelHub;
  workDir: string;
  pollMs?: number;
  log?: (line: string) => void;
}

interface Served {
  file: string;
  testRows: Row[];
  datasetType: Record<string, unknown>;
}

export class LocalValidator {
  private readonly client: ValidatorClient;
  private readonly served = new Map<string, Served>();
  private server?: http.Server;
  private baseUrl = '';

  constructor(private readonly opts: LocalValidatorOptions) {
    this.client = new ValidatorClient(opts.keypair, opts.minerUrl, opts.minerHotkey);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** Serves the datasets on loopback (only the training split: the test split never leaves the validator). */
  async start(): Promise<void> {
    await fs.mkdir(path.join(this.opts.workDir, 'datasets'), { recursive: true });
    this.server = http.createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '').replace(/^\/datasets\//, ''));
      const entry = [...this.served.values()].find((s) => path.basename(s.file) === name);
      if (req.method !== 'GET' || !entry) {
        res.writeHead(404).end('not found');
        return;
      }
      fs.readFile(entry.file).then(
        (body) => res.writeHead(200, { 'Content-Length': body.length }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Writes the task's training split for download and keeps its test split; returns the dataset URL. */
  private async serveData(task: ValidatorTask): Promise<{ url: string; datasetType: Record<string, unknown> }> {
    const d = task.data!;
    const { rows, datasetType } = offlineJobData(d.task, d.trainRows + d.testRows);
    // Seeded by the task id: each task's split differs, and the same task gets the same split.
    const shuffled = shuffle(rows, task.taskId);
    const file = path.join(this.opts.workDir, 'datasets', `${task.taskId}.${d.format}`);
    await fs.writeFile(file, rowsToFile(shuffled.slice(d.testRows), d.format));
    this.served.set(task.taskId, { file, testRows: shuffled.slice(0, d.testRows), datasetType });
    return { url: `${this.baseUrl}/datasets/${encodeURIComponent(path.basename(file))}`, datasetType };
  }

  /** Offers one task and, when accepted, starts its training. */
  async offer(task: ValidatorTask): Promise<TaskOutcome> {
    const offer: MinerTaskOffer = {
      task_id: task.taskId,
      task_type: task.taskType,
      model: task.model,
      model_params_count: task.paramsCount,
      hours_to_complete: task.hoursToComplete,
      ds_size: task.data?.trainRows ?? 1000,
    };
    const answer = await this.client.offer(offer);
    const outcome: TaskOutcome = {
      task,
      accepted: answer.accepted,
      reason: answer.message,
      startedAt: null,
      deadline: null,
      submittedAt: null,
      submission: null,
      score: null,
      failure: null,
    };
    this.log(
      `validator: offered ${task.taskId} (${task.taskType}, ${task.model}): ${answer.accepted ? 'accepted' : 'declined'}`,
    );
    if (!answer.accepted) return outcome;
    if (!task.data) {
      outcome.failure = `accepted, but this validator has no data for ${task.taskType}`;
      return outcome;
    }
    const { url, datasetType } = await this.serveData(task);
    const sentAt = Date.now();
    const started = await this.client.startTraining(task.taskType, {
      model: task.model,
      task_id: task.taskId,
      hours_to_complete: task.hoursToComplete,
      expected_repo_name: `demo-${task.taskId}`,
      dataset: url,
      dataset_type: datasetType,
      file_format: task.data.format,
    });
    outcome.startedAt = sentAt;
    outcome.deadline = sentAt + task.hoursToComplete * 3_600_000;
    if (!started) outcome.failure = 'start_training was not answered 200';
    return outcome;
  }

  /** Polls the accepted tasks' submissions until each is in or past its deadline, then scores them. */
  async collect(outcomes: TaskOutcome[]): Promise<void> {
    const waiting = outcomes.filter((o) => o.accepted && o.deadline !== null && !o.failure);
    while (waiting.some((o) => !o.submission && Date.now() <= o.deadline!)) {
      for (const o of waiting) {
        if (o.submission || Date.now() > o.deadline!) continue;
        const s = await this.client.submission(o.task.taskId);
        if (s) {
          o.submission = s;
          o.submittedAt = Date.now();
          this.log(
            `validator: ${o.task.taskId} submitted ${s.repo}, ${Math.round((o.deadline! - o.submittedAt) / 1000)} s before its deadline`,
          );
          await this.score(o);
        }
      }
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 2000));
    }
    for (const o of waiting) if (!o.submission) o.failure = 'no submission by the deadline';
  }

  /** Downloads the submission, checks its hash as G.O.D does, and evaluates it and the base on the test split. */
  async score(o: TaskOutcome): Promise<void> {
    const dir = path.join(this.opts.workDir, 'scoring', o.task.taskId);
    try {
      const sub = await this.download(o.submission!.repo, path.join(dir, 'submission'));
      const hash = await godModelHash(sub.files);
      if (hash !== o.submission!.model_hash) {
        o.failure = `model_hash ${o.submission!.model_hash} does not match the repo's ${hash}`;
        return;
      }
      const base = await this.download(o.task.model, path.join(dir, 'base'));
      o.score = await evaluateOnTest(this.served.get(o.task.taskId)!, o.task.taskType, base.dir, sub.dir);
      this.log(
        `validator: ${o.task.taskId} scored: test loss ${o.score.before.toFixed(3)} (base) → ${o.score.after.toFixed(3)}`,
      );
    } catch (err) {
      o.failure = `scoring failed: ${(err as Error).message}`;
    }
  }

  private async download(repo: string, dir: string) {
    await fs.mkdir(dir, { recursive: true });
    const files: { path: string; file: string }[] = [];
    for (const name of [WEIGHTS_FILE, MANIFEST_FILE, TOKENIZER_FILE]) {
      const file = path.join(dir, name);
      try {
        await this.opts.hub.download(repo, 'main', name, file);
        files.push({ path: name, file });
      } catch (err) {
        if (name === WEIGHTS_FILE || name === MANIFEST_FILE) throw err; // tokenizer.json is optional (bytes)
      }
    }
    return { dir, files };
  }
}

/** Test loss of the base and of the submission on the held-back rows, with the project's fine-tuning evaluation. */
export async function evaluateOnTest(
  served: Pick<Served, 'testRows' | 'datasetType'>,
  taskType: TaskType,
  baseDir: string,
  submissionDir: string,
): Promise<TaskScore> {
  const cfg = await checkBaseModel(baseDir); // the base's architecture, checked
  const tokenizer = await loadTokenizer(path.join(baseDir, TOKENIZER_FILE));
  const formatter = rowFormatter(taskType, served.datasetType);
  const examples: (SftExample | PreferenceExample)[] = served.testRows.map((r, i) => formatter.format(r, i + 1));
  const { encoded } = encodeExamples(formatter.kind, examples, tokenizer, cfg.seqLen);
  const ft = FinetuneSchema.parse({
    objective: formatter.kind === 'preference' ? 'dpo' : 'sft',
    method: { kind: 'full' },
    dpo: { beta: 0.1 }, // the job's (subnets/gradients/job.ts finetuneFor)
  });
  const evaluate = async (weightsDir: string): Promise<FinetuneEval> => {
    const weights = await loadWeights(path.join(weightsDir, WEIGHTS_FILE), cfg);
    // DPO scores against the base as reference, as the job trained.
    const reference =
      ft.objective === 'dpo' && weightsDir !== baseDir
        ? await loadWeights(path.join(baseDir, WEIGHTS_FILE), cfg)
        : undefined;
    const run = new FinetuneRun(cfg, weights, ft, reference);
    try {
      return run.evaluate(encoded, 8);
    } finally {
      run.dispose();
      tf.dispose([...weights.values()]);
    }
  };
  const before = await evaluate(baseDir);
  const after = await evaluate(submissionDir);
  return {
    before: before.loss,
    after: after.loss,
    ...(after.preferenceAccuracy === undefined ? {} : { preferenceAccuracy: after.preferenceAccuracy }),
  };
}

/** A deterministic shuffle seeded by a string (mulberry32 over its hash). */
function shuffle<T>(items: T[], seed: string): T[] {
  let h = 2166136261;
  for (const c of seed) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  const rand = () => {
    h = (h + 0x6d2b79f5) | 0;
    let t = Math.imul(h ^ (h >>> 15), 1 | h);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
