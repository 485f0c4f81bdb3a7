// The Hugging Face Hub transport and the local hub, checked against the validators' own client:
// Python huggingface_hub 0.36.2 (Connito's validators download with hf_hub_download) reads what our
// client uploads, and our client downloads and verifies what huggingface_hub commits.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { downloadFile } from '@huggingface/hub';
import { HubInputError, HubIntegrityError, HubNotFoundError, openHub } from '../infra/hub/hub';
import { startLocalHub, type LocalHub } from '../infra/hub/local-hub';
import { createLogger } from '../infra/log';
import { projectRoot } from '../infra/paths';
import { loadSettings } from '../infra/settings';

const PYTHON = path.join(projectRoot(), '.tools', 'venv', 'bin', 'python');
const PEER = path.join(projectRoot(), 'test', 'python', 'hub_peer.py');
const TOKEN = 'hf_localHubTestToken7f3a9c2e';

let tmp: string;
let hubDir: string;
let local: LocalHub;

before(async () => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`bash scripts/setup.sh --with-python\``);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'minerflow-hub-'));
  hubDir = path.join(tmp, 'hub');
  local = await startLocalHub({ dir: hubDir, token: TOKEN });
});

after(async () => {
  await local?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

interface PyResult {
  code: number;
  out: Record<string, unknown>;
  stderr: string;
}

/** Runs test/python/hub_peer.py with HF_ENDPOINT at `endpoint`, asynchronously (the hub serves from this process). */
function peer(args: string[], opts: { endpoint?: string; token?: string } = {}): Promise<PyResult> {
  const home = path.join(tmp, `hf-home-${randomBytes(4).toString('hex')}`); // a fresh cache: every call hits the hub
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HF_ENDPOINT: opts.endpoint ?? local.url,
    HF_TOKEN: opts.token ?? TOKEN,
    HF_HOME: home,
    HF_HUB_DISABLE_TELEMETRY: '1',
    HF_HUB_DISABLE_PROGRESS_BARS: '1',
  };
  return new Promise((resolve) => {
    execFile(PYTHON, [PEER, ...args], { env, encoding: 'utf8' }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      resolve({
        code: err ? ((err as { code?: number }).code ?? 1) : 0,
        out: last.startsWith('{') ? (JSON.parse(last) as Record<string, unknown>) : {},
        stderr,
      });
    });
  });
}

async function py(args: string[], opts?: { endpoint?: string; token?: string }): Promise<Record<string, unknown>> {
  const r = await peer(args, opts);
  assert.equal(r.code, 0, `hub_peer.py ${args.join(' ')} failed:\n${r.stderr}`);
  return r.out;
}

async function writeRandom(name: string, bytes: number): Promise<{ file: string; sha256: string; size: number }> {
  const file = path.join(tmp, name);
  const data = randomBytes(bytes);
  await fs.writeFile(file, data);
  return { file, sha256: createHash('sha256').update(data).digest('hex'), size: bytes };
}

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
}

/** Whatever a download left in `dir`: only files named in `allowed` may be there (no temp or partial files). */
async function leftovers(dir: string, allowed: string[] = []): Promise<string[]> {
  return (await fs.readdir(dir)).filter((f) => !allowed.includes(f));
}

test('JS upload → Python hf_hub_download at the 7-character and the full sha returns the same bytes', async () => {
  const hub = openHub({ endpoint: local.url, token: TOKEN });
  const shard = await writeRandom('shard.pt', 200_000); // LFS by the .gitattributes pattern *.pt
  const config = await writeRandom('config.json', 300); // small: goes inline, base64 in the commit
  const repo = 'miner1/connito-experts';
  const { commitSha } = await hub.upload(
    repo,
    [
      { path: 'model_expgroup_3.pt', file: shard.file },
      { path: 'meta/config.json', file: config.file },
    ],
    'checkpoint for round 1',
  );
  assert.match(commitSha, /^[0-9a-f]{40}$/);

  for (const revision of [commitSha.slice(0, 7), commitSha]) {
    for (const [filename, local_] of [
      ['model_expgroup_3.pt', shard],
      ['meta/config.json', config],
    ] as const) {
      const got = await py(['download', repo, filename, revision]);
      assert.deepEqual(got, { sha256: local_.sha256, size: local_.size, commit: commitSha }, `${filename}@${revision}`);
    }
  }
  // Connito's validator: hf_hub_download(repo_id=r, revision=rv, filename=…, local_dir=…) with the 7-char rv.
  const shardDir = path.join(tmp, 'validator-submissions');
  assert.deepEqual(await py(['fetch_shard', repo, 'model_expgroup_3.pt', commitSha.slice(0, 7), shardDir]), {
    sha256: shard.sha256,
    size: shard.size,
  });
  // The official JS client's own download (range probe, then the bytes) works against the local hub too.
  const blob = await downloadFile({
    repo,
    path: 'model_expgroup_3.pt',
    revision: commitSha.slice(0, 7),
    hubUrl: local.url,
  });
  assert.ok(blob, 'blob');
  assert.equal(
    createHash('sha256')
      .update(Buffer.from(await blob.arrayBuffer()))
      .digest('hex'),
    shard.sha256,
  );

  const info = await py(['info', repo, commitSha.slice(0, 7)]);
  assert.equal(info.sha, commitSha);
  const files = info.files as Record<string, [number, string | null]>;
  assert.deepEqual(files['model_expgroup_3.pt'], [shard.size, shard.sha256], 'the shard went through LFS');
  assert.deepEqual(files['meta/config.json'], [config.size, null], 'the small file went inline');
});

test('the same files again make no new commit; new bytes make one, and the old commit keeps its bytes', async () => {
  const hub = openHub({ endpoint: local.url, token: TOKEN });
  const repo = 'miner1/immutable';
  const v1 = await writeRandom('v1.pt', 50_000);
  const first = await hub.upload(repo, [{ path: 'model_expgroup_0.pt', file: v1.file }], 'v1');
  const again = await hub.upload(repo, [{ path: 'model_expgroup_0.pt', file: v1.file }], 'v1 retried');
  assert.equal(again.commitSha, first.commitSha, 'a retried upload returns the same commit');
  assert.deepEqual((await py(['refs', repo])).branches, [['main', first.commitSha]]);

  const v2 = await writeRandom('v2.pt', 50_000);
  const second = await hub.upload(repo, [{ path: 'model_expgroup_0.pt', file: v2.file }], 'v2');
  assert.notEqual(second.commitSha, first.commitSha);
  assert.deepEqual((await py(['refs', repo])).branches, [['main', second.commitSha]]);

  const old = await hub.download(repo, first.commitSha.slice(0, 7), 'model_expgroup_0.pt', path.join(tmp, 'old.pt'));
  assert.deepEqual(old, { sha256: v1.sha256, bytes: v1.size, commitSha: first.commitSha });
  const head = await hub.download(repo, 'main', 'model_expgroup_0.pt', path.join(tmp, 'head.pt'));
  assert.deepEqual(head, { sha256: v2.sha256, bytes: v2.size, commitSha: second.commitSha });
  assert.equal(await sha256Of(path.join(tmp, 'old.pt')), v1.sha256);
});

test('Python create_commit (inline, LFS by pattern, LFS by size) → our download gets every file and verifies it', async () => {
  const hub = openHub({ endpoint: local.url, token: TOKEN });
  const repo = 'validator/global-model';
  const notes = await writeRandom('notes.txt', 1000);
  const weights = await writeRandom('weights.pt', 300_000);
  const big = await writeRandom('big.dat', 10 * 1024 * 1024 + 1); // over the Hub's 10 MiB: LFS whatever its name
  const { commit } = await py([
    'upload',
    repo,
    'global model v7',
    `${notes.file}=notes.txt`,
    `${weights.file}=model_expgroup_1.pt`,
    `${big.file}=data/big.dat`,
  ]);
  assert.match(String(commit), /^[0-9a-f]{40}$/);
  const sha = String(commit);
  assert.equal(await hub.resolve(repo, sha.slice(0, 7)), sha);
  assert.equal(await hub.resolve(repo, 'main'), sha);

  const lfs = (await py(['info', repo, sha])).files as Record<string, [number, string | null]>;
  assert.equal(lfs['data/big.dat'][1], big.sha256, 'the 10 MiB file went through LFS');
  assert.equal(lfs['notes.txt'][1], null, 'the small file went inline');

  for (const [filename, f] of [
    ['notes.txt', notes],
    ['model_expgroup_1.pt', weights],
    ['data/big.dat', big],
  ] as const) {
    const dest = path.join(tmp, 'from-python', path.basename(filename));
    const got = await hub.download(repo, sha.slice(0, 7), filename, dest);
    assert.deepEqual(got, { sha256: f.sha256, bytes: f.size, commitSha: sha }, filename);
    assert.equal(await sha256Of(dest), f.sha256);
  }
  assert.deepEqual(
    (await leftovers(path.join(tmp, 'from-python'))).sort(),
    ['big.dat', 'model_expgroup_1.pt', 'notes.txt'],
    'no partial files left',
  );

  // Connito's validators publish the global model with upload_folder(allow_patterns=["model*.pt"]).
  const folder = path.join(tmp, 'global-v8');
  await fs.mkdir(folder, { recursive: true });
  const expert = await writeRandom('global-v8/model_expgroup_1.pt', 120_000);
  await writeRandom('global-v8/optimizer.bin', 1000); // not model*.pt: stays local
  const published = String((await py(['publish', repo, 'global model v8', folder])).commit);
  assert.notEqual(published, sha);
  const got = await hub.download(repo, published.slice(0, 7), 'model_expgroup_1.pt', path.join(tmp, 'v8.pt'));
  assert.deepEqual(got, { sha256: expert.sha256, bytes: expert.size, commitSha: published });
  await assert.rejects(hub.download(repo, published, 'optimizer.bin', path.join(tmp, 'opt.bin')), HubNotFoundError);
  const old = await hub.download(repo, sha.slice(0, 7), 'model_expgroup_1.pt', path.join(tmp, 'v7.pt'));
  assert.equal(old.sha256, weights.sha256, 'the earlier commit still has the earlier bytes');
});

test('a revision, file or repo that does not exist is an error naming it, and nothing is written', async () => {
  const hub = openHub({ endpoint: local.url, token: TOKEN });
  const repo = 'miner1/missing';
  const f = await writeRandom('m.pt', 1000);
  const { commitSha } = await hub.upload(repo, [{ path: 'model_expgroup_0.pt', file: f.file }], 'one');
  const outDir = path.join(tmp, 'missing-out');
  await fs.mkdir(outDir, { recursive: true });
  const dest = path.join(outDir, 'x.pt');
  const badRev = commitSha.startsWith('0000000') ? 'fffffff' : '0000000';

  await assert.rejects(hub.download(repo, badRev, 'model_expgroup_0.pt', dest), (err: Error) => {
    assert.ok(err instanceof HubNotFoundError, String(err));
    assert.match(err.message, new RegExp(`${repo}.*no revision '${badRev}'`));
    return true;
  });
  await assert.rejects(hub.download(repo, commitSha.slice(0, 7), 'model_expgroup_9.pt', dest), (err: Error) => {
    assert.ok(err instanceof HubNotFoundError, String(err));
    assert.match(
      err.message,
      /file not found: model_expgroup_9\.pt in miner1\/missing@[0-9a-f]{7} \(commit [0-9a-f]{40}\)/,
    );
    return true;
  });
  await assert.rejects(hub.download('nobody/nothing', 'main', 'a.pt', dest), (err: Error) => {
    assert.ok(err instanceof HubNotFoundError, String(err));
    assert.match(err.message, /repo nobody\/nothing not found/);
    return true;
  });
  await assert.rejects(hub.download(repo, 'main', '../escape.pt', dest), HubInputError);
  assert.deepEqual(await leftovers(outDir), [], 'nothing at dest, no partial file');

  // The validators' client sees the same as Hub errors it knows.
  assert.equal((await py(['missing', repo, 'model_expgroup_0.pt', badRev])).error, 'RevisionNotFoundError');
  assert.equal((await py(['missing', repo, 'model_expgroup_9.pt', commitSha.slice(0, 7)])).error, 'EntryNotFoundError');
});

test('a corrupted or truncated object on the hub is detected, and nothing is left at dest', async () => {
  const hub = openHub({ endpoint: local.url, token: TOKEN });
  const repo = 'miner1/corrupt';
  const shard = await writeRandom('c.pt', 100_000);
  const small = await writeRandom('c.txt', 500);
  const { commitSha } = await hub.upload(
    repo,
    [
      { path: 'model_expgroup_0.pt', file: shard.file },
      { path: 'README.txt', file: small.file },
    ],
    'to corrupt',
  );
  const outDir = path.join(tmp, 'corrupt-out');
  await fs.mkdir(outDir, { recursive: true });
  const dest = path.join(outDir, 'model.pt');
  const object = path.join(hubDir, 'objects', shard.sha256); // the local hub stores objects by sha256
  const original = await fs.readFile(object);

  const flipped = Buffer.from(original);
  flipped[flipped.length >> 1] ^= 0xff; // same size, one byte wrong
  await fs.writeFile(object, flipped);
  await assert.rejects(hub.download(repo, commitSha, 'model_expgroup_0.pt', dest), (err: Error) => {
    assert.ok(err instanceof HubIntegrityError, String(err));
    assert.match(err.message, new RegExp(`sha256 [0-9a-f]{64} differs from the hub's ${shard.sha256}`));
    return true;
  });
  await fs.writeFile(object, original.subarray(0, original.length >> 1));
  await assert.rejects(
    hub.download(repo, commitSha, 'model_expgroup_0.pt', dest),
    /got 50000 bytes, the hub records 100000/,
  );
  assert.deepEqual(await leftovers(outDir), []);

  // A small (non-LFS) file is checked against its git blob id.
  const smallObject = path.join(hubDir, 'objects', small.sha256);
  const smallBytes = await fs.readFile(smallObject);
  await fs.writeFile(smallObject, Buffer.alloc(smallBytes.length, 0x41));
  await assert.rejects(hub.download(repo, commitSha, 'README.txt', dest), /git blob id [0-9a-f]{40} differs/);
  assert.deepEqual(await leftovers(outDir), []);

  // With the bytes restored the same download succeeds: the failures were the corruption.
  await fs.writeFile(object, original);
  const ok = await hub.download(repo, commitSha, 'model_expgroup_0.pt', dest);
  assert.equal(ok.sha256, shard.sha256);
  assert.deepEqual(await leftovers(outDir), ['model.pt']);
});

test('a download cut off mid-way leaves nothing at dest', async () => {
  const repo = 'miner1/cutoff';
  const shard = await writeRandom('cut.pt', 2_000_000);
  const { commitSha } = await openHub({ endpoint: local.url, token: TOKEN }).upload(
    repo,
    [{ path: 'model_expgroup_0.pt', file: shard.file }],
    'to cut',
  );
  // A proxy in front of the hub that drops the connection after 64 KiB of an object's body.
  const target = new URL(local.url);
  const proxy: Server = createServer((req, res) => {
    const up = request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (!req.url?.startsWith('/lfs-objects/')) return void upRes.pipe(res);
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          if (sent >= 65_536) return;
          sent += chunk.length;
          res.write(chunk);
          if (sent >= 65_536) {
            upRes.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  try {
    const hub = openHub({ endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, token: TOKEN });
    const outDir = path.join(tmp, 'cut-out');
    await fs.mkdir(outDir, { recursive: true });
    await assert.rejects(
      hub.download(repo, commitSha, 'model_expgroup_0.pt', path.join(outDir, 'm.pt')),
      (err: Error) => {
        assert.ok(err instanceof HubIntegrityError, String(err));
        assert.match(err.message, /broke after \d+ of 2000000 bytes/);
        return true;
      },
    );
    assert.deepEqual(await leftovers(outDir), []);
  } finally {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
});

test('writes need the hub token: a wrong or missing token is refused and nothing changes', async () => {
  const good = openHub({ endpoint: local.url, token: TOKEN });
  const repo = 'miner1/guarded';
  const f = await writeRandom('g.pt', 1000);
  const { commitSha } = await good.upload(repo, [{ path: 'model_expgroup_0.pt', file: f.file }], 'first');
  const other = await writeRandom('g2.pt', 1000);

  const wrong = openHub({ endpoint: local.url, token: 'hf_notTheHubsToken' });
  await assert.rejects(
    wrong.upload(repo, [{ path: 'model_expgroup_0.pt', file: other.file }], 'sneak'),
    (err: Error) => {
      assert.match(err.message, /HTTP 401.*Invalid credentials.*HF_TOKEN is a write token/s);
      return true;
    },
  );
  await assert.rejects(wrong.upload('miner1/new-repo', [{ path: 'a.pt', file: other.file }], 'create'), /HTTP 401/);
  await assert.rejects(good.resolve('miner1/new-repo', 'main'), HubNotFoundError, 'no repo was created');
  await assert.rejects(
    openHub({ endpoint: local.url }).upload(repo, [{ path: 'a.pt', file: other.file }], 'anonymous'),
    (err: Error) => err instanceof HubInputError && /needs HF_TOKEN/.test(err.message),
  );
  const python = await peer(['upload', repo, 'sneak', `${other.file}=x.pt`], { token: 'hf_pythonWrongToken' });
  assert.notEqual(python.code, 0);
  assert.match(python.stderr, /401 Client Error/);
  assert.deepEqual((await py(['refs', repo])).branches, [['main', commitSha]], 'main did not move');
  // Reads stay public.
  const anonymous = await openHub({ endpoint: local.url }).download(
    repo,
    'main',
    'model_expgroup_0.pt',
    path.join(tmp, 'anon.pt'),
  );
  assert.equal(anonymous.sha256, f.sha256);
});

test('the token never reaches a log line or an error message', async () => {
  const chunks: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void chunks.push(s) } });
  const hub = openHub({ endpoint: local.url, token: TOKEN, log });
  const f = await writeRandom('log.pt', 2000);
  const { commitSha } = await hub.upload('miner1/logged', [{ path: 'model_expgroup_0.pt', file: f.file }], 'logged');
  await hub.download('miner1/logged', commitSha.slice(0, 7), 'model_expgroup_0.pt', path.join(tmp, 'logged.pt'));
  const errors: unknown[] = [];
  await hub
    .download('miner1/logged', 'main', 'nope.pt', path.join(tmp, 'nope.pt'))
    .catch((e: unknown) => errors.push(e));
  const wrongToken = 'hf_wrongTokenForLogTest';
  await openHub({ endpoint: local.url, token: wrongToken, log })
    .upload('miner1/logged', [{ path: 'x.pt', file: f.file }], 'refused')
    .catch((e: unknown) => errors.push(e));
  assert.equal(errors.length, 2);
  // What an activity would log: the errors (with their causes), the settings, a request's headers, the client's options.
  for (const err of errors) log.error({ err }, 'hub call failed');
  const settings = loadSettings({ HF_TOKEN: TOKEN, HF_ENDPOINT: local.url });
  assert.equal(settings.hub.token, TOKEN);
  assert.equal(settings.hub.endpoint, local.url);
  log.info({ settings }, 'settings');
  log.info({ request: { headers: { Authorization: `Bearer ${TOKEN}` } } }, 'request');
  log.info({ options: { accessToken: TOKEN, hubUrl: local.url } }, 'client options');

  const text = chunks.join('');
  assert.match(text, /hub: uploaded/, 'the logger did capture the hub client');
  assert.match(text, /hub: downloaded and verified/);
  for (const secret of [TOKEN, wrongToken]) assert.ok(!text.includes(secret), `a token reached the log:\n${text}`);
  for (const err of errors) {
    const all = `${String(err)} ${JSON.stringify(err)} ${String((err as Error).cause)}`;
    assert.ok(!all.includes(TOKEN) && !all.includes(wrongToken), `a token is in an error: ${all}`);
  }

  // A malformed HF_TOKEN is refused by name, without echoing it.
  assert.throws(
    () => loadSettings({ HF_TOKEN: 'sk-not-a-hf-token-12345' }),
    (err: Error) => /HF_TOKEN/.test(err.message) && !err.message.includes('sk-not-a-hf-token-12345'),
  );
  assert.throws(
    () => openHub({ endpoint: local.url, token: 'not-hf-secret-999' }),
    (err: Error) => err instanceof HubInputError && !err.message.includes('not-hf-secret-999'),
  );
  assert.equal(loadSettings({}).hub.endpoint, 'https://huggingface.co');
});

test('`minerflow hub` usage errors name what was typed and exit with 2', () => {
  for (const [args, mention] of [
    [['hub'], "'hub' needs a command: serve"],
    [['hub', 'start'], "unknown 'hub' command 'start'"],
    [['hub', 'serve', '--port', '70000'], "--port '70000'"],
    [['hub', 'serve', '--token', 'hf_x'], '--token'],
  ] as const) {
    const r = spawnSync(process.execPath, [path.join(projectRoot(), 'bin', 'minerflow.js'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, MINERFLOW_DATA_DIR: tmp },
    });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(mention), `${args.join(' ')}: ${r.stderr}`);
  }
});

test('`minerflow hub serve` starts the local hub on the port asked for, and stops on SIGTERM', async () => {
  const dir = path.join(tmp, 'cli-hub');
  const child = spawn(
    process.execPath,
    [path.join(projectRoot(), 'bin', 'minerflow.js'), 'hub', 'serve', '--port', '0', '--dir', dir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /minerflow hub: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`hub serve exited with ${code}: ${out}`)));
  });
  try {
    const res = await fetch(`${url}/api/models/nobody/nothing`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('x-error-code'), 'RepoNotFound');
    // Any Bearer token writes when the hub was started without one.
    const created = await fetch(`${url}/api/repos/create`, {
      method: 'POST',
      headers: { Authorization: 'Bearer hf_any', 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'm', organization: 'someone', type: 'model' }),
    });
    assert.equal(created.status, 200);
    assert.ok(
      existsSync(path.join(dir, 'repos', 'someone', 'm')),
      "existsSync(path.join(dir, 'repos', 'someone', 'm'))",
    );
  } finally {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});
