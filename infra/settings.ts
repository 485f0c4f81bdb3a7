// Worker and CLI settings: where things are (Temporal, data folder, store, chain, wallets).
// They come from the environment, so the same build runs on a laptop, a GPU box or a cluster;
// what a cycle does comes from its input (common/config.ts), not from here.
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { parseOrExplain } from '../common/config';
import { CONNITO_PHASES, parsePhases, type PhaseSpec } from '../subnets/connito/phases';
import { projectRoot } from './paths';

/** A short cycle for the embedded chain (1 s blocks, 2.6 minutes): room for the demo's training and 10 s commit windows. */
export const LOCAL_DEMO_PHASES =
  'Distribute:2,Train:120,MinerCommit1:10,MinerCommit2:10,Submission:5,Validate:5,Merge:10,ValidatorCommit1:3,ValidatorCommit2:3';

const EnvSchema = z.object({
  MINERFLOW_DATA_DIR: z.string().min(1).optional(),
  // Folders a cycle's corpus may be read from (path.delimiter-separated); workflow input is not trusted.
  MINERFLOW_DATA_ROOTS: z.string().min(1).optional(),
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS: z.enum(['true', 'false']).optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  MINERFLOW_UI_URL: z.string().url().default('http://localhost:8233'),
  MINERFLOW_STORE: z.string().min(1).optional(),
  // S3 store (MINERFLOW_STORE=s3://bucket/prefix). Credentials stay with the AWS SDK's own chain
  // (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, roles): no secret enters Settings.
  MINERFLOW_S3_ENDPOINT: z.string().url().optional(),
  MINERFLOW_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).optional(),
  AWS_REGION: z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .optional(),
  // devnet: the local devnet (started by demo, dev, `minerflow devnet` and the tests) at
  // MINERFLOW_DEVNET_URL; ws://…|wss://…: a subtensor node.
  MINERFLOW_CHAIN: z
    .string()
    .regex(/^(devnet|wss?:\/\/\S+)$/, 'must be devnet or a ws:// or wss:// subtensor endpoint')
    .default('devnet'),
  MINERFLOW_DEVNET_URL: z
    .string()
    .regex(/^wss?:\/\/\S+$/, 'must be a ws:// or wss:// URL')
    .default('ws://127.0.0.1:9944'),
  MINERFLOW_PHASES: z.string().min(1).optional(),
  MINERFLOW_CONNITO_OWNER_URL: z
    .string()
    .regex(/^https?:\/\/\S+$/, "must be an http:// or https:// URL (Connito's phase service)")
    .optional(),
  MINERFLOW_BLOCK_MS: z.coerce.number().int().min(10).max(600_000).default(12_000),
  MINERFLOW_WALLETS: z.string().min(1).optional(),
  MINERFLOW_LOCAL_BLOCK_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  MINERFLOW_LOCAL_PHASES: z.string().default(LOCAL_DEMO_PHASES),
  MINERFLOW_LOCAL_REGISTER: z.string().default('default/default@102'),
  MINERFLOW_VALIDATOR_CORPUS: z.string().min(1).default('sample:brown'),
  MINERFLOW_TEMPORAL_BIN: z.string().min(1).optional(),
  // Hugging Face Hub (Connito's transport): another hub (e.g. `minerflow hub serve`) and the write token.
  HF_ENDPOINT: z.string().url().default('https://huggingface.co'),
  HF_TOKEN: z
    .string()
    .regex(/^hf_\S+$/, "must be a Hugging Face token (starts with 'hf_')")
    .optional(),
  // Each worker process serves /metrics here: 0 = any free port (listed for Prometheus under
  // $MINERFLOW_DATA_DIR/metrics/targets), off = none.
  MINERFLOW_METRICS_PORT: z
    .string()
    .regex(/^(off|\d{1,5})$/, 'must be a port number, 0 for any free port, or off')
    .refine((v) => v === 'off' || Number(v) <= 65_535, 'must be at most 65535')
    .default('0'),
  MINERFLOW_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
});

export interface Settings {
  dataDir: string;
  /** Absolute folders corpora may be read from (MINERFLOW_DATA_ROOTS; default: the data folder). */
  dataRoots: string[];
  temporal: {
    address: string;
    namespace: string;
    apiKey?: string;
    tls?: { clientCertPath?: string; clientKeyPath?: string; serverCaCertPath?: string; serverName?: string };
    uiUrl: string;
    bin: string; // the Temporal CLI used by `minerflow dev` and the tests
  };
  store: string; // folder, file: or s3: URI
  /** For s3:// stores: an S3-compatible server's URL (unset: AWS), region, path-style URLs. */
  s3: { endpoint?: string; region: string; forcePathStyle: boolean };
  chain: {
    kind: 'devnet' | 'subtensor';
    /** The endpoint (devnet and subtensor). */
    url: string;
    /** A real chain's phases and block time (MINERFLOW_PHASES, else Connito's; MINERFLOW_BLOCK_MS); the devnet tells its own. */
    phases: PhaseSpec[];
    blockMs: number;
    /**
     * Connito's phase service (MINERFLOW_CONNITO_OWNER_URL). Unset: on a real chain
     * https://cycle-api.connito.ai unless MINERFLOW_PHASES fixes the phases; on a devnet, its own.
     */
    ownerUrl?: string;
    phasesFixed: boolean;
    /** The devnet's clock, phases and registrations. */
    local: { blockMs: number; phases: PhaseSpec[]; register: { wallet: string; hotkey: string; netuid: number }[] };
  };
  walletsDir: string;
  validatorCorpus: string;
  /** The Hugging Face Hub (HF_ENDPOINT, HF_TOKEN): read by the worker, never put in workflow input. */
  hub: { endpoint: string; token?: string };
  /** The workers' /metrics endpoint (infra/metrics.ts): a port (0: any free one) or off, and the address to bind. */
  metrics: { port: number | 'off'; host: string };
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const e = parseOrExplain(EnvSchema, pick(env), 'environment');
  const dataDir = path.resolve(e.MINERFLOW_DATA_DIR ?? '.minerflow');
  const tlsWanted =
    e.TEMPORAL_TLS === 'true' ||
    !!e.TEMPORAL_TLS_CLIENT_CERT_PATH ||
    (!!e.TEMPORAL_API_KEY && e.TEMPORAL_TLS !== 'false');
  return {
    dataDir,
    dataRoots: parseDataRoots(e.MINERFLOW_DATA_ROOTS, dataDir),
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      apiKey: e.TEMPORAL_API_KEY,
      tls: tlsWanted
        ? {
            clientCertPath: e.TEMPORAL_TLS_CLIENT_CERT_PATH,
            clientKeyPath: e.TEMPORAL_TLS_CLIENT_KEY_PATH,
            serverCaCertPath: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
            serverName: e.TEMPORAL_TLS_SERVER_NAME,
          }
        : undefined,
      uiUrl: e.MINERFLOW_UI_URL.replace(/\/$/, ''),
      bin: e.MINERFLOW_TEMPORAL_BIN ?? path.join(projectRoot(), '.tools', 'bin', 'temporal'),
    },
    store: e.MINERFLOW_STORE ?? path.join(dataDir, 'store'),
    s3: {
      endpoint: e.MINERFLOW_S3_ENDPOINT,
      region: e.AWS_REGION ?? 'us-east-1',
      // S3-compatible servers mostly want path-style; AWS wants virtual-hosted style.
      forcePathStyle: e.MINERFLOW_S3_FORCE_PATH_STYLE
        ? e.MINERFLOW_S3_FORCE_PATH_STYLE === 'true'
        : !!e.MINERFLOW_S3_ENDPOINT,
    },
    chain: {
      kind: e.MINERFLOW_CHAIN === 'devnet' ? 'devnet' : 'subtensor',
      url: e.MINERFLOW_CHAIN === 'devnet' ? e.MINERFLOW_DEVNET_URL : e.MINERFLOW_CHAIN,
      phases: e.MINERFLOW_PHASES ? parsePhases(e.MINERFLOW_PHASES) : CONNITO_PHASES,
      blockMs: e.MINERFLOW_BLOCK_MS,
      ownerUrl: e.MINERFLOW_CONNITO_OWNER_URL,
      phasesFixed: !!e.MINERFLOW_PHASES,
      local: {
        blockMs: e.MINERFLOW_LOCAL_BLOCK_MS,
        phases: parsePhases(e.MINERFLOW_LOCAL_PHASES),
        register: parseRegistrations(e.MINERFLOW_LOCAL_REGISTER),
      },
    },
    walletsDir: path.resolve(
      e.MINERFLOW_WALLETS ??
        (e.MINERFLOW_CHAIN === 'devnet'
          ? path.join(dataDir, 'wallets')
          : path.join(os.homedir(), '.bittensor', 'wallets')),
    ),
    validatorCorpus: e.MINERFLOW_VALIDATOR_CORPUS,
    hub: { endpoint: e.HF_ENDPOINT.replace(/\/+$/, ''), token: e.HF_TOKEN },
    metrics: {
      port: e.MINERFLOW_METRICS_PORT === 'off' ? 'off' : Number(e.MINERFLOW_METRICS_PORT),
      host: e.MINERFLOW_METRICS_HOST,
    },
  };
}

/** MINERFLOW_DATA_ROOTS (path.delimiter-separated) → absolute folders; unset: just the data folder. */
export function parseDataRoots(text: string | undefined, dataDir: string): string[] {
  const roots = (text ?? '')
    .split(path.delimiter)
    .map((r) => r.trim())
    .filter((r) => r !== '');
  return roots.length === 0 ? [path.resolve(dataDir)] : roots.map((r) => path.resolve(r));
}

/** "wallet/hotkey@netuid,…" → registrations the devnet makes at genesis. */
function parseRegistrations(text: string): { wallet: string; hotkey: string; netuid: number }[] {
  if (!text.trim()) return [];
  return text.split(',').map((part) => {
    const m = /^([\w.-]+)\/([\w.-]+)@(\d+)$/.exec(part.trim());
    if (!m) throw new Error(`MINERFLOW_LOCAL_REGISTER entry '${part}' must look like wallet/hotkey@netuid`);
    return { wallet: m[1], hotkey: m[2], netuid: Number(m[3]) };
  });
}

function pick(env: NodeJS.ProcessEnv): Record<string, string> {
  const keys = Object.keys(EnvSchema.shape);
  const out: Record<string, string> = {};
  for (const k of keys) if (env[k] !== undefined && env[k] !== '') out[k] = env[k]!;
  return out;
}
