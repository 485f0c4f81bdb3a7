// A job's base model (`request.model`, a Hugging Face repo) brought into the store as a warm start
// (training.initFrom): model.safetensors, tokenizer.json (BPE models) and manifest.json at the repo's
// current commit, under base-models/<repo>/<commit>/, manifest last (its presence means complete).
// The built-in trainer fine-tunes minerflow GPTs only: a repo without our manifest fails the job at
// once with that reason rather than after the slot wait.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HubNotFoundError, type ModelHub } from '../../infra/hub/hub';
import type { CheckpointStore } from '../../infra/store/store';
import { MANIFEST_FILE, TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { BaseModelError } from '../../finetune/base-model';
import type { BaseModel } from './job';

export { BaseModelError };

export async function fetchBaseModel(
  repo: string,
  deps: { hub: ModelHub; store: CheckpointStore; workDir: string },
): Promise<BaseModel> {
  const dir = path.join(deps.workDir, 'base-models', ...repo.split('/'));
  await fs.mkdir(dir, { recursive: true });
  const get = async (name: string) => {
    try {
      return await deps.hub.download(repo, 'main', name, path.join(dir, name));
    } catch (err) {
      if (err instanceof HubNotFoundError)
        throw new BaseModelError(
          `request.model '${repo}': ${name} is not on the hub at ${deps.hub.endpoint} (${err.message}); the built-in trainer fine-tunes minerflow GPT models published with ${MANIFEST_FILE}, ${WEIGHTS_FILE} and ${TOKENIZER_FILE}`,
        );
      throw err;
    }
  };
  const { commitSha } = await get(MANIFEST_FILE);
  const manifest = JSON.parse(await fs.readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as {
    format?: string;
    model?: Record<string, unknown>;
    tokenizer?: string;
  };
  const m = manifest.model ?? {};
  const dims = ['seqLen', 'dModel', 'nLayer', 'nHead', 'vocabSize'] as const;
  if (manifest.format !== 'minerflow-checkpoint' || dims.some((d) => !Number.isInteger(m[d]) || (m[d] as number) < 1))
    throw new BaseModelError(
      `request.model '${repo}': ${MANIFEST_FILE} is not a minerflow checkpoint manifest with model.{${dims.join(', ')}}; the built-in trainer cannot fine-tune it`,
    );
  if (m.moe) throw new BaseModelError(`request.model '${repo}': mixture-of-experts bases are not fine-tuned by jobs`);
  const tokenizer = manifest.tokenizer === 'bpe' ? 'bpe' : 'bytes';
  // Pinned to the manifest's commit: the weights cannot change under us between the two reads.
  const key = `base-models/${repo}/${commitSha}`;
  const names = tokenizer === 'bpe' ? [WEIGHTS_FILE, TOKENIZER_FILE] : [WEIGHTS_FILE];
  for (const name of names) {
    await deps.hub.download(repo, commitSha, name, path.join(dir, name)).catch((err: unknown) => {
      if (err instanceof HubNotFoundError)
        throw new BaseModelError(`request.model '${repo}@${commitSha}': ${name} is missing (${err.message})`);
      throw err;
    });
    await deps.store.put(`${key}/${name}`, path.join(dir, name), { immutable: true });
  }
  if (!(await deps.store.exists(`${key}/${MANIFEST_FILE}`)))
    await deps.store.put(`${key}/${MANIFEST_FILE}`, path.join(dir, MANIFEST_FILE), { immutable: true });
  return {
    repo,
    commitSha,
    initFrom: key,
    model: {
      seqLen: m.seqLen as number,
      dModel: m.dModel as number,
      nLayer: m.nLayer as number,
      nHead: m.nHead as number,
      vocabSize: m.vocabSize as number,
      tokenizer,
    },
    parameters: await parameterCount(path.join(dir, WEIGHTS_FILE)),
  };
}

/** Parameters in a safetensors file, from its header alone. */
async function parameterCount(file: string): Promise<number> {
  const fh = await fs.open(file, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const buf = Buffer.alloc(8 + n);
    await fh.read(buf, 0, 8 + n, 0);
    const header = JSON.parse(buf.subarray(8).toString('utf8')) as Record<string, unknown>;
    let total = 0;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      total += ((t as { shape: number[] }).shape ?? []).reduce((a, b) => a * b, 1);
    }
    return total;
  } finally {
    await fh.close();
  }
}
