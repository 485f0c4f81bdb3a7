// Hub transfer: our ModelHub (upload as one commit; download hashed while streaming and verified)
// next to Python huggingface_hub's upload_file / hf_hub_download, the same file against the same
// local hub, which runs in its own process (`minerflow hub serve`) so neither client shares its loop.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { openHub } from '../infra/hub/hub';
import { createLogger } from '../infra/log';
import { projectRoot } from '../infra/paths';
import { benchLine, note } from './report';

const MIB = 1024 * 1024;
const TOKEN = 'hf_benchLocalHub';

export async function hubTransferBench(work: string): Promise<void> {
  const dir = path.join(work, `hub-${Date.now()}`);
  await fs.mkdir(dir, { recursive: true });
  const size = 64 * MIB;
  const ROUNDS = 3;
  const server = spawn(
    process.execPath,
    [path.join(projectRoot(), 'bin', 'minerflow.js'), 'hub', 'serve', '--port', '0', '--dir', path.join(dir, 'hub')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /minerflow hub: (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      server.once('exit', (code) => reject(new Error(`minerflow hub serve exited with ${code}`)));
    });
    const hub = openHub({ endpoint: url, token: TOKEN, log: createLogger({ level: 'warn' }) });
    const py = async (args: string[]): Promise<{ seconds: number; commit?: string }> => {
      const env = {
        PATH: process.env.PATH,
        HF_ENDPOINT: url,
        HF_TOKEN: TOKEN,
        HF_HOME: path.join(dir, `hf-${args[0]}`),
        HF_HUB_DISABLE_PROGRESS_BARS: '1',
        HF_HUB_DISABLE_TELEMETRY: '1',
      };
      const { stdout } = await promisify(execFile)(
        path.join(projectRoot(), '.tools', 'venv', 'bin', 'python'),
        [path.join(projectRoot(), 'bench', 'python', 'hub_transfer.py'), ...args],
        { env, encoding: 'utf8' },
      );
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as { seconds: number; commit?: string };
    };

    // Ours and the reference take turns, best of ROUNDS each, so neither pays alone for what the
    // other left behind (dirty pages being written back, a cold cache). Every upload is of fresh
    // bytes: the hub stores objects by sha256 and would skip a transfer it already has.
    const best = { oursUp: Infinity, refUp: Infinity, oursDown: Infinity, refDown: Infinity };
    for (let round = 0; round < ROUNDS; round++) {
      const file = await randomFile(path.join(dir, `ours-${round}.pt`), size);
      let t = performance.now();
      const { commitSha } = await hub.upload('bench/ours', [{ path: 'model_expgroup_0.pt', file }], `round ${round}`);
      best.oursUp = Math.min(best.oursUp, (performance.now() - t) / 1000);
      const refFile = await randomFile(path.join(dir, `reference-${round}.pt`), size);
      const refUp = await py(['upload', 'bench/reference', refFile, 'model_expgroup_0.pt']);
      best.refUp = Math.min(best.refUp, refUp.seconds);

      t = performance.now();
      await hub.download(
        'bench/ours',
        commitSha.slice(0, 7),
        'model_expgroup_0.pt',
        path.join(dir, `down-${round}.pt`),
      );
      best.oursDown = Math.min(best.oursDown, (performance.now() - t) / 1000);
      const refDown = await py(['download', 'bench/ours', 'model_expgroup_0.pt', commitSha.slice(0, 7)]);
      best.refDown = Math.min(best.refDown, refDown.seconds);
      await Promise.all([file, refFile, path.join(dir, `down-${round}.pt`)].map((f) => fs.rm(f, { force: true })));
    }
    const mib = size / MIB;
    benchLine('hub-upload', mib / best.oursUp, 'MiB/s', mib / best.refUp, 'MiB/s', best.refUp / best.oursUp);
    benchLine('hub-download', mib / best.oursDown, 'MiB/s', mib / best.refDown, 'MiB/s', best.refDown / best.oursDown);
    note(
      `${mib} MiB through LFS on a local hub, best of ${ROUNDS}; ours checks the files at head first and the commit after (upload), hashes sha256 while streaming and fsyncs (download); huggingface_hub checks the size only`,
    );
  } finally {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function randomFile(file: string, size: number): Promise<string> {
  const handle = await fs.open(file, 'w');
  for (let i = 0; i < size / (8 * MIB); i++) await handle.write(randomBytes(8 * MIB));
  await handle.close();
  return file;
}
