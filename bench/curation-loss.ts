// Does curation pay? One Brown genre (j, learned writing) is the domain. A polluted corpus mixes its
// documents with off-domain genres, planted near copies and crawl junk. The same model trains for
// the same token budget on the raw corpus and on the curated one; both are scored on clean
// in-domain held-out text that neither saw. Lower loss is better: ratio = raw / curated.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CurateSchema } from '../common/config';
import { normalise } from '../curation/clean';
import { curate, readSplit } from '../curation/curate';
import { initBackend } from '../model/backend';
import { evaluate } from '../model/evaluate';
import { disposeWeights, initWeights, type GptConfig } from '../model/gpt';
import { Rng } from '../model/rng';
import { BYTE_VOCAB_SIZE, encodeDocuments } from '../model/tokenizer';
import { Trainer } from '../model/trainer';
import { brownDocs, junkDoc, nearCopy } from './corpora';
import { benchLine, note } from './report';

export async function curationLossBench(work: string): Promise<void> {
  await initBackend('auto', () => undefined);
  const rng = new Rng(11);
  const domain = await brownDocs(path.join(work, 'corpora'), 'j');
  for (let i = domain.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [domain[i], domain[j]] = [domain[j], domain[i]];
  }
  const reference = domain.slice(0, 20);
  const evalDocs = domain.slice(20, 35);
  const inDomain = domain.slice(35);
  const offDomain = await brownDocs(path.join(work, 'corpora'), 'klmnpr');

  const root = path.join(work, `curation-loss-${Date.now()}`);
  const corpus = path.join(root, 'corpus');
  const refDir = path.join(root, 'reference');
  await fs.mkdir(corpus, { recursive: true });
  await fs.mkdir(refDir, { recursive: true });
  for (const d of reference) await fs.writeFile(path.join(refDir, d.name), d.text);
  const raw: string[] = [];
  const add = async (name: string, text: string) => {
    await fs.writeFile(path.join(corpus, name), text);
    raw.push(normalise(text));
  };
  for (const d of inDomain) await add(d.name, d.text);
  for (const d of offDomain) await add(d.name, d.text);
  // Pollution in the proportions of a raw crawl: a few pages re-posted many times, and junk.
  for (let i = 0; i < 4; i++)
    for (let k = 0; k < 15; k++) await add(`copy-${i}-${k}.txt`, nearCopy(inDomain[i].text, rng));
  for (let i = 0; i < 120; i++) await add(`junk-${i}.txt`, junkDoc(rng));

  const opts = {
    ...CurateSchema.parse({ heldOutFraction: 0.05 }),
    format: 'auto' as const,
    textField: 'text',
    domain: { reference: refDir, quantile: 0.05 },
  };
  const ds = await curate(corpus, path.join(root, 'datasets'), opts);
  const curated = await readSplit(path.join(ds.dir, 'train.jsonl'));
  note(
    `raw: ${raw.length} documents (${inDomain.length} in-domain, ${offDomain.length} off-domain, 60 near copies, 120 junk; ${(raw.join('').length / 1e6).toFixed(1)} M chars); curated: ${curated.length} train documents, dropped ${JSON.stringify(Object.fromEntries(Object.entries(ds.report.dropped).filter(([, n]) => n > 0)))}`,
  );

  const cfg: GptConfig = { vocabSize: BYTE_VOCAB_SIZE, seqLen: 64, dModel: 64, nLayer: 2, nHead: 4 };
  const training = {
    steps: 300,
    batchSize: 16,
    learningRate: 3e-3,
    warmupSteps: 20,
    weightDecay: 0.1,
    gradClip: 1,
    beta1: 0.9,
    beta2: 0.95,
    seed: 1,
  };
  const heldOut = encodeDocuments(evalDocs.map((d) => normalise(d.text)));
  const lossAfterTraining = async (texts: string[]) => {
    const weights = initWeights(cfg, 0);
    const trainer = new Trainer(cfg, weights, training, encodeDocuments(texts));
    await trainer.run();
    const loss = evaluate(weights, cfg, heldOut, { maxTokens: 32_768, batchSize: 16 }).loss;
    trainer.dispose();
    disposeWeights(weights);
    return loss;
  };
  const curatedLoss = await lossAfterTraining(curated);
  const rawLoss = await lossAfterTraining(raw);
  note(
    `same model (${cfg.nLayer}×${cfg.dModel}), same budget (${training.steps} steps × ${training.batchSize} × ${cfg.seqLen} tokens), held-out = ${evalDocs.length} clean in-domain documents`,
  );
  benchLine('curation-loss', curatedLoss, 'nats', rawLoss, 'nats', rawLoss / curatedLoss);
  if (!Number.isFinite(curatedLoss) || !Number.isFinite(rawLoss))
    throw new Error('a contender did not produce a finite loss');
}
