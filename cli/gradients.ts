// `minerflow gradients serve`: the Gradients miner's intake — the HTTP service validators call,
// with the hotkey it answers for, the metagraph it checks validators against, the record of past
// jobs and the offer book under the data folder, and /metrics. The training side (JobStarter and
// PoolView, Temporal behind them) comes in through `JobsWiring`.
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { InvalidInputError, parseOrExplain } from '../common/config';
import type { Chain } from '../infra/chain/chain';
import { logger } from '../infra/log';
import { startMetricsServer } from '../infra/metrics';
import { openChain } from '../infra/runtime';
import type { Settings } from '../infra/settings';
import { checkWalletName, loadHotkey } from '../infra/wallet';
import { AcceptancePolicySchema, DEFAULT_POLICY } from '../subnets/gradients/acceptance';
import { watchPools } from '../subnets/gradients/metrics';
import { PoolSchema } from '../subnets/gradients/config';
import { JobConfigSchema, type JobConfig } from '../subnets/gradients/job';
import { temporalJobStarter, temporalPoolView } from '../subnets/gradients/temporal-ports';
import { connectClient } from '../infra/temporal';
import { DEFAULT_MIN_STAKE, Metagraph } from '../subnets/gradients/fiber';
import { FileJobRecord } from '../subnets/gradients/job-record';
import type { JobStarter, PoolView } from '../subnets/gradients/ports';
import { OfferBook, startGradientsService, type RunningService } from '../subnets/gradients/service';
import { intFlag, parseCommand, UsageError } from './args';

export const DEFAULT_GRADIENTS_PORT = 7999;

/** The serve config file (JSON). */
export const GradientsServeConfigSchema = z
  .object({
    wallet: z.string(),
    hotkey: z.string(),
    netuid: z.number().int().min(0).max(65_535).default(56),
    pools: z.array(PoolSchema).min(1),
    /** fiber's min_stake_threshold: validators below it are refused (403). */
    minStake: z.number().min(0).default(DEFAULT_MIN_STAKE),
    metagraphRefreshSeconds: z.number().int().min(10).default(300),
    /** Overrides of the acceptance policy (acceptance.ts DEFAULT_POLICY). */
    policy: AcceptancePolicySchema.default({}),
    /** How accepted jobs train and are submitted: trainer, training, policy, eval, reserveSeconds, hubNamespace. */
    jobs: JobConfigSchema.omit({ pools: true, hotkey: true }).prefault({}),
  })
  .strict()
  .refine((c) => new Set(c.pools.map((p) => p.name)).size === c.pools.length, {
    message: 'pool names must be unique',
    path: ['pools'],
  });
export type GradientsServeConfig = z.infer<typeof GradientsServeConfigSchema>;

/** The training side: starts jobs and tells the pools' load (the trainingJob and poolScheduler workflows). */
export type JobsWiring = (
  settings: Settings,
  config: GradientsServeConfig,
) => Promise<{ jobs: JobStarter; poolView: PoolView; close(): Promise<void> }>;

/** The trainingJob config the service starts jobs with: the pools, the job settings and the hotkey's label. */
export function jobConfigOf(config: GradientsServeConfig): JobConfig {
  return { ...config.jobs, pools: config.pools, hotkey: `${config.wallet}/${config.hotkey}` };
}

/** Jobs start as trainingJob workflows on the control queue; the pools' load comes from their schedulers. */
export const temporalWiring: JobsWiring = async (settings, config) => {
  const client = await connectClient(settings);
  return {
    jobs: temporalJobStarter(client, jobConfigOf(config)),
    poolView: temporalPoolView(client, config.pools),
    close: () => client.connection.close(),
  };
};

export interface MinerService {
  service: RunningService;
  minerHotkey: string;
  close(): Promise<void>;
}

/** Starts the service for `config`: loads the hotkey, reads the metagraph, opens the record and the offer book. */
export async function startMinerService(opts: {
  settings: Settings;
  config: GradientsServeConfig;
  chain: Pick<Chain, 'neurons'>;
  jobs: JobStarter;
  poolView: PoolView;
  host?: string;
  port?: number;
}): Promise<MinerService> {
  const { settings, config } = opts;
  const hotkey = await loadHotkey(
    settings.walletsDir,
    checkWalletName('wallet', config.wallet),
    checkWalletName('hotkey', config.hotkey),
  );
  const metagraph = new Metagraph(opts.chain, config.netuid, config.metagraphRefreshSeconds * 1000);
  await metagraph.start();
  const service = await startGradientsService(
    {
      minerHotkey: hotkey.address,
      stakeOf: metagraph.stakeOf,
      minStake: config.minStake,
      pools: config.pools,
      poolView: opts.poolView,
      jobs: opts.jobs,
      record: FileJobRecord.inDataDir(settings.dataDir),
      offers: await OfferBook.inDataDir(settings.dataDir).load(),
      policy: config.policy,
    },
    { host: opts.host, port: opts.port },
  );
  return {
    service,
    minerHotkey: hotkey.address,
    close: async () => {
      metagraph.stop();
      await service.close();
    },
  };
}

export async function readServeConfig(file: string): Promise<GradientsServeConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`gradients serve: cannot read config ${file}: ${(err as Error).message}`, false);
  }
  try {
    return parseOrExplain(GradientsServeConfigSchema, raw, `gradients config ${file}`);
  } catch (err) {
    if (err instanceof InvalidInputError) throw new UsageError(err.message, false);
    throw err;
  }
}

/** `gradients serve --config FILE [--port N] [--host H]`, with the training side from `wiring`. */
export async function serveCommand(getSettings: () => Settings, args: string[], wiring: JobsWiring): Promise<void> {
  const { values } = parseCommand('gradients serve', args, {
    config: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
  });
  if (typeof values.config !== 'string') throw new UsageError('gradients serve needs --config FILE');
  const config = await readServeConfig(values.config);
  const port = intFlag('port', values.port, 0, 65_535) ?? DEFAULT_GRADIENTS_PORT;
  const host = typeof values.host === 'string' ? values.host : '0.0.0.0';
  const settings = getSettings();
  const chain = await openChain(settings);
  const training = await wiring(settings, config);
  const miner = await startMinerService({ settings, config, chain, ...training, host, port });
  watchPools(training.poolView, config.pools, { ...DEFAULT_POLICY, ...config.policy });
  const metrics = await startMetricsServer({ ...settings.metrics, dataDir: settings.dataDir, worker: 'gradients' });
  logger.info(
    { url: miner.service.url, hotkey: `${config.wallet}/${config.hotkey}`, pools: config.pools.map((p) => p.name) },
    'gradients service listening',
  );
  console.log(`minerflow gradients: serving ${miner.minerHotkey} on ${miner.service.url}; Ctrl-C stops.`);
  if (metrics) console.log(`  metrics: ${metrics.url}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await miner.close();
  await training.close();
  await metrics?.close();
  await chain.close();
}

export async function gradientsCommand(getSettings: () => Settings, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("'gradients' needs a command: serve or demo");
  if (sub === 'serve') return serveCommand(getSettings, rest, temporalWiring);
  if (sub === 'demo')
    return (require('./gradients-demo') as typeof import('./gradients-demo')).gradientsDemo(getSettings, rest);
  throw new UsageError(`unknown 'gradients' command '${sub}' (there are: serve, demo)`);
}
