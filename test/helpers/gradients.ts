// What Gradients tests share: a tiny base model published to a hub, as `minerflow gradients demo`
// publishes its own, and a dataset served over HTTP, as a validator serves it.
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { openHub } from '../../infra/hub/hub';
import type { Settings } from '../../infra/settings';
import { initBackend } from '../../model/backend';
import { saveWeights, writeManifest } from '../../model/checkpoint';
import { initWeights } from '../../model/gpt';

/** A fresh 1-layer byte-level GPT (untrained) uploaded to `repo` as a minerflow base model. */
export async function publishTinyBase(hub: Settings['hub'], dir: string, repo: string): Promise<void> {
  await initBackend('auto', () => undefined);
  const cfg = { vocabSize: 256, seqLen: 32, dModel: 32, nLayer: 1, nHead: 2 };
  const out = path.join(dir, 'base');
  await fs.mkdir(out, { recursive: true });
  const weights = path.join(out, 'model.safetensors');
  const modelHash = await saveWeights(weights, initWeights(cfg, 7));
  const manifest = await writeManifest(out, {
    format: 'minerflow-checkpoint',
    version: 1,
    modelHash,
    model: { ...cfg, seed: 7 },
    tokenizer: 'bytes',
    step: 0,
    trainLoss: NaN,
    backend: 'init',
    runId: 'base',
    round: 0,
  });
  await openHub(hub).upload(
    repo,
    [
      { path: 'model.safetensors', file: weights },
      { path: 'manifest.json', file: manifest },
    ],
    'base model',
  );
}

/** Serves `body` at every path on loopback; returns the URL of /data.json. */
export async function serveDataset(body: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/data.json`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
