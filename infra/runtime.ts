// Builds the adapters a worker needs from its settings: the checkpoint store, the chain (with the
// embedded chain's local validator) and sample corpora. The one place that knows which
// implementation stands behind each port.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CorpusInput, CurateInput } from '../common/config';
import { checkInsideRoots, CorpusError, type CurateOptions } from '../curation/curate';
import { exportBrown } from '../curation/brown';
import type { Chain } from './chain/chain';
import { SubtensorChain } from './chain/subtensor';
import { startDevnet, type Devnet } from './devnet/server';
import { makeDevnetValidator } from '../subnets/connito/devnet-validator';
import { DevnetGlobalPublisher } from '../subnets/connito/devnet-global';
import { openHub } from './hub/hub';
import { loadSettings, parseDataRoots, type Settings } from './settings';
import { FsStore } from './store/fs-store';
import { S3Store } from './store/s3-store';
import type { CheckpointStore } from './store/store';
import { ensureHotkey } from './wallet';
import { logger } from './log';

/**
 * A store from a folder path or URI (file:, s3://bucket/prefix). S3 settings and the download
 * cache (<data dir>/cache/s3) come from `settings`, else from the environment.
 */
export function openStore(location: string, settings?: Pick<Settings, 'dataDir' | 's3'>): CheckpointStore {
  if (location.startsWith('file:')) return new FsStore(fileURLToPath(location));
  if (location.startsWith('s3:')) {
    const { dataDir, s3 } = settings ?? loadSettings();
    return new S3Store(location, { cacheDir: path.join(dataDir, 'cache', 's3'), ...s3 });
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new Error(
      `checkpoint store '${location}': unsupported scheme; use a folder path, a file: URI or s3://bucket/prefix`,
    );
  }
  return new FsStore(location);
}

/**
 * `sample:brown` or `sample:brown:<genres>` → a folder of the Brown corpus as text; anything else
 * is a path, which must lie inside `roots` (symlinks resolved) before anything is read from it.
 * `field` names the input the spec came from, for messages.
 */
export async function resolveCorpus(
  spec: string,
  dataDir: string,
  roots?: string[],
  field = 'corpus.path',
): Promise<string> {
  const m = /^sample:brown(?::([a-r]+))?$/.exec(spec);
  if (m) return exportBrown(sampleCorporaDir(dataDir), m[1]);
  if (spec.startsWith('sample:'))
    throw new CorpusError(
      `${field} '${spec}': unknown sample corpus; use sample:brown or sample:brown:<genres> (genres a–r)`,
    );
  if (spec.includes('\0')) throw new CorpusError(`${field} contains a NUL character; give a plain path`);
  const resolved = path.resolve(spec);
  if (roots) await checkInsideRoots(resolved, roots, field, spec);
  return resolved;
}

/** Where sample corpora are exported: always readable, whatever MINERFLOW_DATA_ROOTS says. */
function sampleCorporaDir(dataDir: string): string {
  return path.join(dataDir, 'corpora');
}

/**
 * The corpus folder and the curation options for a cycle's input, sample corpora resolved to paths.
 * `where` is the settings (their dataDir and dataRoots) or, for callers that only know the data
 * folder, that folder (the roots then come from MINERFLOW_DATA_ROOTS). Pass `roots` on to curate().
 */
export async function curationPlan(
  corpus: CorpusInput,
  options: CurateInput,
  where: string | Pick<Settings, 'dataDir' | 'dataRoots'>,
): Promise<{ source: string; opts: CurateOptions; roots: string[] }> {
  const dataDir = typeof where === 'string' ? where : where.dataDir;
  const roots = [
    ...(typeof where === 'string' ? parseDataRoots(process.env.MINERFLOW_DATA_ROOTS, dataDir) : where.dataRoots),
    sampleCorporaDir(dataDir),
  ];
  const reference =
    options.domain.reference === null
      ? null
      : await resolveCorpus(options.domain.reference, dataDir, roots, 'curate.domain.reference');
  return {
    source: await resolveCorpus(corpus.path, dataDir, roots, 'corpus.path'),
    opts: { ...options, ...corpus, domain: { ...options.domain, reference } },
    roots,
  };
}

/**
 * The chain adapter the settings name: subtensor over @polkadot/api (a real endpoint, or the local
 * devnet, which speaks the same JSON-RPC).
 */
export async function openChain(settings: Settings): Promise<Chain> {
  const { url, phases, blockMs, ownerUrl, phasesFixed } = settings.chain;
  return SubtensorChain.connect({ url, phases, blockMs, ownerUrl, phasesFixed });
}

/** The embedded chains' registrations (MINERFLOW_LOCAL_REGISTER), hotkeys created if missing. */
export async function localRegistrations(settings: Settings): Promise<{ netuid: number; address: string }[]> {
  const register = [];
  for (const r of settings.chain.local.register) {
    const pair = await ensureHotkey(settings.walletsDir, r.wallet, r.hotkey);
    register.push({ netuid: r.netuid, address: pair.address });
  }
  return register;
}

/** A devnet for these settings (their block time, phases, registrations and validator) on loopback. */
export async function startLocalDevnet(
  settings: Settings,
  opts: { port?: number; log?: (msg: string) => void } = {},
): Promise<Devnet> {
  const log = opts.log ?? ((m: string) => logger.info(m));
  const { local } = settings.chain;
  // The validator's own hotkey, registered and whitelisted: it publishes each round's global model
  // (when there is a hub to publish to) for the next round's Distribute.
  const validatorKey = await ensureHotkey(settings.walletsDir, 'validator', 'default');
  let chain: Promise<Chain> | undefined;
  let url = '';
  const publisher = settings.hub.token
    ? new DevnetGlobalPublisher({
        netuid: 102,
        repo: 'devnet-validator/global',
        hotkey: validatorKey,
        phases: local.phases,
        hub: () => openHub(settings.hub),
        store: () => openStore(settings.store, settings),
        chain: () => (chain ??= SubtensorChain.connect({ url, phases: local.phases, blockMs: local.blockMs })),
        log,
      })
    : undefined;
  const devnet = await startDevnet({
    port: opts.port ?? 0,
    blockMs: local.blockMs,
    phases: local.phases,
    // 1000 TAO of stake: miners weigh validators' models by it.
    register: [...(await localRegistrations(settings)), { netuid: 102, address: validatorKey.address, stakeRao: 1e12 }],
    validatorHotkeys: [validatorKey.address],
    validator: makeDevnetValidator(settings, log, publisher),
    log,
  });
  url = devnet.url;
  const closeDevnet = devnet.close.bind(devnet);
  devnet.close = async () => {
    if (chain) await (await chain).close();
    await closeDevnet();
  };
  if (publisher)
    devnet.chain.onBlock((b) => {
      publisher.onBlock(b.number).catch((err: Error) => log(`devnet validator: commit failed: ${err.message}`));
    });
  return devnet;
}
