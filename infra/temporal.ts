// Temporal connections for clients and workers: the local dev server by default; any cluster or
// Temporal Cloud by address, namespace, mTLS or API key (see README "Remote Temporal").
// The TEMPORAL_* variables and the Temporal CLI's profile file (TEMPORAL_CONFIG_FILE,
// TEMPORAL_PROFILE, ~/.config/temporalio/temporal.toml) are read by @temporalio/envconfig, the
// SDK's own loader; `settings.temporal` (from the same variables, or from the env a test hands
// loadSettings) wins where it says something, so every connection agrees with the workers'
// `settings.temporal.namespace`.
import { promises as fs } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import { temporal } from '@temporalio/proto';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { FLEET_ATTRIBUTES } from '../common/search-attributes';
import { logger } from './log';
import type { Settings } from './settings';

const log = logger.child({ module: 'temporal' });

/** The address Settings falls back to when TEMPORAL_ADDRESS is unset: then a profile file's address is used. */
const DEFAULT_ADDRESS = 'localhost:7233';

type TlsOption = NativeConnectionOptions['tls'];

/**
 * Connection options from envconfig's profile (file, then TEMPORAL_* over it), with
 * `settings.temporal` taking precedence for address, API key and TLS files it names.
 */
export async function connectionOptions(
  t: Settings['temporal'],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ address: string; apiKey?: string; tls?: TlsOption; metadata?: NativeConnectionOptions['metadata'] }> {
  const fromEnvconfig = toClientOptions(loadProfile(env)).connectionOptions;
  const address =
    t.address !== DEFAULT_ADDRESS || env.TEMPORAL_ADDRESS ? t.address : (fromEnvconfig.address ?? t.address);
  const apiKey = t.apiKey ?? (typeof fromEnvconfig.apiKey === 'string' ? fromEnvconfig.apiKey : undefined);
  const tls = t.tls
    ? await tlsFromSettings(t.tls, fromEnvconfig.tls)
    : (fromEnvconfig.tls ?? (apiKey ? true : undefined));
  return { address, apiKey, tls, metadata: fromEnvconfig.metadata };
}

function loadProfile(env: NodeJS.ProcessEnv) {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') vars[k] = v;
  try {
    return loadClientConfigProfile({ overrideEnvVars: vars });
  } catch (err) {
    throw new Error(
      `Temporal client profile (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE): ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

/** TLS from the settings' certificate paths; envconfig's inline certificates (TEMPORAL_TLS_*_DATA) fill what they leave out. */
async function tlsFromSettings(tls: NonNullable<Settings['temporal']['tls']>, fallback: TlsOption): Promise<TlsOption> {
  const base = typeof fallback === 'object' && fallback !== null ? fallback : {};
  return {
    ...base,
    serverNameOverride: tls.serverName ?? base.serverNameOverride,
    serverRootCACertificate: tls.serverCaCertPath
      ? await fs.readFile(tls.serverCaCertPath)
      : base.serverRootCACertificate,
    clientCertPair:
      tls.clientCertPath && tls.clientKeyPath
        ? { crt: await fs.readFile(tls.clientCertPath), key: await fs.readFile(tls.clientKeyPath) }
        : base.clientCertPair,
  };
}

export async function connectClient(settings: Settings): Promise<Client> {
  const options = await connectionOptions(settings.temporal);
  log.debug(
    { address: options.address, namespace: settings.temporal.namespace, tls: !!options.tls },
    'connecting client',
  );
  const connection = await Connection.connect(options);
  return new Client({ connection, namespace: settings.temporal.namespace });
}

export async function connectWorker(settings: Settings): Promise<NativeConnection> {
  const options = await connectionOptions(settings.temporal);
  log.debug(
    { address: options.address, namespace: settings.temporal.namespace, tls: !!options.tls },
    'connecting worker',
  );
  return NativeConnection.connect(options);
}

export function workflowUrl(settings: Settings, workflowId: string, runId?: string): string {
  const base = `${settings.temporal.uiUrl}/namespaces/${encodeURIComponent(settings.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}

/**
 * Registers the fleet's search attributes (common/search-attributes.ts) on the namespace where they
 * are missing. A cycle that sets an unregistered attribute stalls on its next workflow task, so a
 * control worker refuses to start on a server where they cannot be added (Temporal Cloud: add them
 * in the namespace's settings or with `tcld`).
 */
export async function ensureSearchAttributes(
  operator: Pick<NativeConnection['operatorService'], 'listSearchAttributes' | 'addSearchAttributes'>,
  namespace: string,
): Promise<string[]> {
  const UNIMPLEMENTED = 12; // gRPC status: Temporal's Java test server lists none, but adds them
  const known = await operator.listSearchAttributes({ namespace }).then(
    (have) => ({ ...have.customAttributes, ...have.systemAttributes }),
    (err: { code?: number }) => {
      if (err.code === UNIMPLEMENTED) return {};
      throw err;
    },
  );
  const added: string[] = [];
  for (const k of Object.values(FLEET_ATTRIBUTES)) {
    if (k.name in known) continue;
    const type = temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${k.type}`];
    try {
      await operator.addSearchAttributes({ namespace, searchAttributes: { [k.name]: type } });
      added.push(k.name);
    } catch (err) {
      if (err instanceof Error && /already exists/i.test(err.message)) continue;
      throw new Error(
        `the namespace '${namespace}' lacks the search attribute ${k.name} (${k.type}) and it could not be added (${err instanceof Error ? err.message : String(err)}); add it as the namespace's administrator: \`temporal operator search-attribute create --namespace ${namespace} --name ${k.name} --type ${k.type === 'INT' ? 'Int' : 'Keyword'}\` (Temporal Cloud: the namespace's settings or tcld)`,
        { cause: err },
      );
    }
  }
  if (added.length > 0) log.info({ namespace, added }, 'registered the fleet search attributes');
  return added;
}
