// Temporal connections for clients and workers: the local dev server by default; any cluster or
// Temporal Cloud by address, namespace, mTLS or API key (see README "Remote Temporal").
import { promises as fs } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Settings } from './settings';

async function connectionOptions(t: Settings['temporal']) {
  const tls = t.tls
    ? {
        serverNameOverride: t.tls.serverName,
        serverRootCACertificate: t.tls.serverCaCertPath ? await fs.readFile(t.tls.serverCaCertPath) : undefined,
        clientCertPair:
          t.tls.clientCertPath && t.tls.clientKeyPath
            ? { crt: await fs.readFile(t.tls.clientCertPath), key: await fs.readFile(t.tls.clientKeyPath) }
            : undefined,
      }
    : undefined;
  return { address: t.address, tls, apiKey: t.apiKey };
}

export async function connectClient(settings: Settings): Promise<Client> {
  const connection = await Connection.connect(await connectionOptions(settings.temporal));
  return new Client({ connection, namespace: settings.temporal.namespace });
}

export async function connectWorker(settings: Settings): Promise<NativeConnection> {
  return NativeConnection.connect(await connectionOptions(settings.temporal));
}

export function workflowUrl(settings: Settings, workflowId: string, runId?: string): string {
  const base = `${settings.temporal.uiUrl}/namespaces/${encodeURIComponent(settings.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}
