// The Gradients miner's HTTP service: the endpoints G.O.D's validators call before release 6.0
// (miner/endpoints/tuning.py), each behind fiber's checks (fiber.ts). Offers are answered by the
// acceptance policy from the pools' load and the record of past jobs; an accepted offer is written
// to the offer book on disk before the answer goes out, so a start_training after a restart still
// finds it; training requests start jobs through the JobStarter (Temporal behind it).
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { z } from 'zod';
import { InvalidInputError, parseOrExplain } from '../../common/config';
import { logger as rootLogger, type Logger } from '../../infra/log';
import { decideOffer, jobKind, type AcceptancePolicy, type Decision } from './acceptance';
import type { Pool } from './config';
import { NonceStore, verifyRequest } from './fiber';
import { recordOffer } from './metrics';
import type { JobRecord, JobStarter, PoolJob, PoolLoad, PoolView } from './ports';
import {
  datasetTypeSchemaFor,
  MinerTaskOfferSchema,
  TrainRequestGrpoSchema,
  TrainRequestImageSchema,
  TrainRequestTextSchema,
  type MinerTaskOffer,
  type TaskType,
  type TrainRequestText,
} from './protocol';

/** Bodies larger than this are refused (413): offers are a few hundred bytes, GRPO requests carry reward code. */
export const MAX_BODY_BYTES = 1 << 20;
/** The pools' load must arrive within this, or the offer is declined: the validator waits 3 s in all. */
export const LOAD_TIMEOUT_MS = 1_500;

/** An accepted offer, kept until its job is started and its deadline has passed. */
export interface AcceptedOffer {
  offer: MinerTaskOffer;
  decision: Decision;
  receivedAt: number; // epoch ms
  deadline: number; // epoch ms
  started: boolean;
}

/**
 * Accepted offers by task id, in one JSON file replaced atomically (write, fsync, rename) on every
 * change; entries are dropped a day after their deadline.
 */
export class OfferBook {
  private offers = new Map<string, AcceptedOffer>();
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  static inDataDir(dataDir: string): OfferBook {
    return new OfferBook(path.join(dataDir, 'gradients', 'offers.json'));
  }

  async load(): Promise<this> {
    try {
      const raw = JSON.parse(await fs.readFile(this.file, 'utf8')) as Record<string, AcceptedOffer>;
      this.offers = new Map(Object.entries(raw));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`offer book ${this.file} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    return this;
  }

  get(taskId: string): AcceptedOffer | undefined {
    return this.offers.get(taskId);
  }

  all(): AcceptedOffer[] {
    return [...this.offers.values()];
  }

  async put(entry: AcceptedOffer, now = Date.now()): Promise<void> {
    this.offers.set(entry.offer.task_id, entry);
    for (const [id, e] of this.offers) if (e.deadline + 86_400_000 < now) this.offers.delete(id);
    await this.save();
  }

  private save(): Promise<void> {
    const text = JSON.stringify(Object.fromEntries(this.offers));
    this.writing = this.writing.then(async () => {
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.${randomUUID()}.tmp`;
      const handle = await fs.open(tmp, 'w');
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, this.file);
    });
    return this.writing;
  }
}

export interface ServiceDeps {
  /** This miner's hotkey (ss58): requests for another are refused (401). */
  minerHotkey: string;
  /** Validator stakes from the metagraph (fiber.ts Metagraph.stakeOf). */
  stakeOf: (hotkey: string) => number | undefined;
  minStake?: number;
  pools: Pool[];
  poolView: PoolView;
  jobs: JobStarter;
  record: JobRecord;
  offers: OfferBook;
  policy?: Partial<AcceptancePolicy>;
  nonces?: NonceStore;
  now?: () => number;
  log?: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const START_ENDPOINTS: Record<string, TaskType[]> = {
  '/start_training/': ['InstructTextTask', 'DpoTask', 'ChatTask'],
  '/start_training_grpo/': ['GrpoTask'],
  '/start_training_image/': ['ImageTask'],
};

function parse<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.infer<S> {
  try {
    return parseOrExplain(schema, raw, what);
  } catch (err) {
    if (err instanceof InvalidInputError) throw new HttpError(422, err.message);
    throw err;
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      reject(new HttpError(413, `body of ${declared} bytes is over the ${MAX_BODY_BYTES}-byte limit`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `body is over the ${MAX_BODY_BYTES}-byte limit`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The request handler (exported for tests that bring their own server). */
export function createHandler(deps: ServiceDeps): http.RequestListener {
  const now = deps.now ?? Date.now;
  const nonces = deps.nonces ?? new NonceStore(now);
  const log = (deps.log ?? rootLogger).child({ module: 'gradients-service' });
  // Offers are decided one at a time: two answered from the same load could overbook a pool.
  let deciding: Promise<unknown> = Promise.resolve();

  /**
   * The pools' load plus accepted offers the pools do not list yet (they hold their place): not yet
   * started, or started and still preparing data before the job asks its pool for a slot.
   */
  async function loads(): Promise<PoolLoad[]> {
    const read = async () => {
      const seen = await deps.poolView.loads();
      const known = new Set(seen.flatMap((l) => [...l.running, ...l.queued].map((j) => j.taskId)));
      const t = now();
      const unlisted = deps.offers
        .all()
        .filter((o) => o.deadline > t && o.decision.pool && !known.has(o.offer.task_id));
      const stillRunning = await Promise.all(
        unlisted.map((o) => (o.started ? deps.jobs.running(o.offer.task_id) : Promise.resolve(true))),
      );
      return { seen, held: unlisted.filter((_, i) => stillRunning[i]) };
    };
    const { seen, held } = await withTimeout(read(), LOAD_TIMEOUT_MS, 'reading the pools’ load');
    return deps.pools.map((pool) => {
      const load = seen.find((l) => l.pool === pool.name) ?? { pool: pool.name, running: [], queued: [] };
      const extra: PoolJob[] = held
        .filter((o) => o.decision.pool === pool.name)
        .map((o) => ({
          taskId: o.offer.task_id,
          deadline: o.deadline,
          estimatedSeconds: o.decision.estimatedSeconds ?? 0,
          startedAt: null,
        }));
      return { ...load, queued: [...load.queued, ...extra] };
    });
  }

  async function answerOffer(body: unknown, image: boolean): Promise<{ message: string; accepted: boolean }> {
    const started = performance.now();
    const offer = parse(MinerTaskOfferSchema, body, 'task offer');
    const decide = async (): Promise<Decision> => {
      const kind = jobKind(offer);
      if (image !== (offer.task_type === 'ImageTask'))
        return {
          ...noDecision,
          reasonClass: 'task_type',
          reason: image
            ? 'This endpoint only accepts image tasks'
            : 'This endpoint only accepts text tasks: InstructTextTask, DpoTask, GrpoTask and ChatTask',
        };
      // The job workflow takes text requests only (ports.ts JobStarter.start): image jobs cannot be delivered yet.
      if (image) return { ...noDecision, reasonClass: 'task_type', reason: 'image jobs are not taken by this miner' };
      let poolLoads: PoolLoad[];
      try {
        poolLoads = await loads();
      } catch (err) {
        log.warn({ err, taskId: offer.task_id }, 'pool load unavailable: offer declined');
        return {
          ...noDecision,
          reasonClass: 'deadline',
          reason: `cannot see the pools' load: ${(err as Error).message}`,
        };
      }
      const stats = await deps.record.stats(kind);
      const decision = decideOffer(offer, {
        pools: deps.pools,
        loads: poolLoads,
        stats: stats.finished > 0 ? stats : null,
        now: now(),
        policy: deps.policy,
      });
      const t = now();
      if (decision.accepted)
        await deps.offers.put(
          { offer, decision, receivedAt: t, deadline: t + offer.hours_to_complete * 3600_000, started: false },
          t,
        );
      // The record feeds later estimates; failing to write it must not lose this answer.
      await deps.record
        .add({ ...kind, taskId: offer.task_id, event: decision.accepted ? 'accepted' : 'declined' })
        .catch((err: unknown) => log.warn({ err, taskId: offer.task_id }, 'record of past jobs not written'));
      return decision;
    };
    const run = deciding.then(decide, decide);
    deciding = run.catch(() => undefined);
    const decision = await run;
    const seconds = (performance.now() - started) / 1000;
    recordOffer(decision, seconds);
    log.info(
      {
        taskId: offer.task_id,
        model: offer.model,
        taskType: offer.task_type,
        accepted: decision.accepted,
        pool: decision.pool,
        reason: decision.reason,
        ms: Math.round(seconds * 1000),
      },
      'offer answered',
    );
    return { message: decision.reason, accepted: decision.accepted };
  }

  async function startTraining(endpoint: string, body: unknown): Promise<{ message: string; task_id: string }> {
    const taskId = parse(z.object({ task_id: z.string().min(1) }).passthrough(), body, 'training request').task_id;
    const accepted = deps.offers.get(taskId);
    if (!accepted?.decision.accepted)
      throw new HttpError(409, `task ${taskId} was not offered to or accepted by this miner: no training started`);
    const taskType = accepted.offer.task_type;
    if (!START_ENDPOINTS[endpoint].includes(taskType))
      throw new HttpError(409, `task ${taskId} is a ${taskType}: ${endpoint} does not start it`);
    let request: TrainRequestText;
    if (taskType === 'GrpoTask') request = parse(TrainRequestGrpoSchema, body, 'GRPO training request');
    else if (taskType === 'ImageTask') {
      parse(TrainRequestImageSchema, body, 'image training request');
      throw new HttpError(501, 'image jobs are not taken by this miner');
    } else {
      request = parse(TrainRequestTextSchema, body, 'training request');
      // dataset_type's shape follows from the offer's task type; check it here so a bad mapping is the validator's 422.
      parse(datasetTypeSchemaFor(taskType)!, request.dataset_type, `dataset_type of a ${taskType}`);
    }
    await deps.jobs.start({ request, taskType, offer: accepted.offer, decision: accepted.decision, receivedAt: now() });
    if (!accepted.started) await deps.offers.put({ ...accepted, started: true }, now());
    log.info({ taskId, taskType, pool: accepted.decision.pool }, 'training started');
    return { message: 'Training job enqueued.', task_id: taskId };
  }

  async function submission(taskId: string) {
    const found = await deps.jobs.submission(taskId);
    if (!found) throw new HttpError(404, `No model submission found for task ${taskId}`);
    return found;
  }

  async function route(req: http.IncomingMessage, url: string): Promise<unknown> {
    const isPost = url === '/task_offer/' || url === '/task_offer_image/' || url in START_ENDPOINTS;
    const submissionMatch = /^\/get_latest_model_submission\/([^/?]+)$/.exec(url);
    if (!isPost && !submissionMatch) throw new HttpError(404, `no endpoint ${url}`);
    const method = isPost ? 'POST' : 'GET';
    if (req.method !== method) throw new HttpError(405, `${url} takes ${method}`);
    const raw = isPost ? await readBody(req) : undefined;
    const verdict = verifyRequest(req.headers, raw, {
      minerHotkey: deps.minerHotkey,
      stakeOf: deps.stakeOf,
      minStake: deps.minStake,
      nonces,
    });
    if (!verdict.ok) throw new HttpError(verdict.status, verdict.message);
    if (submissionMatch) return submission(decodeURIComponent(submissionMatch[1]));
    let body: unknown;
    try {
      body = JSON.parse(raw!.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
    }
    if (url === '/task_offer/' || url === '/task_offer_image/') return answerOffer(body, url === '/task_offer_image/');
    return startTraining(url, body);
  }

  return (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    route(req, url).then(
      (answer) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer)),
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        const detail = err instanceof Error ? err.message : String(err);
        if (status >= 500) log.error({ err, url }, 'request failed');
        else log.info({ url, status, detail, validator: req.headers['validator-hotkey'] }, 'request refused');
        // FastAPI's shape for errors: {"detail": ...}.
        if (!res.headersSent)
          res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ detail }));
      },
    );
  };
}

const noDecision: Omit<Decision, 'reason' | 'reasonClass'> = {
  accepted: false,
  pool: null,
  method: null,
  estimatedSeconds: null,
  estimatedFinish: null,
};

export interface RunningService {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startGradientsService(
  deps: ServiceDeps,
  opts: { host?: string; port?: number } = {},
): Promise<RunningService> {
  const server = http.createServer(createHandler(deps));
  server.requestTimeout = 30_000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`gradients service: cannot listen on ${host}:${opts.port ?? 0} (${err.code ?? err.message})`)),
    );
    server.listen(opts.port ?? 0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
