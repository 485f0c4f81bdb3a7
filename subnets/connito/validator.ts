// The devnet's validator, doing what a Connito validator does with each round's submissions:
// check the commit-1 signature over the model hash, fetch the checkpoint from the store (the
// devnet's miners publish to one store; Connito's commit names no location), check its hash,
// measure held-out loss with our evaluator, score by the Connito rule.
// Each model is scored per token of its own tokenizer (tokenizer.json beside the weights), on the
// validator's own held-out text.
import { signatureVerify } from '@polkadot/util-crypto';
import { checkpointKey, decodeLocationCommit, decodeSignatureCommit } from './commitments';
import { initBackend } from '../../model/backend';
import { loadWeights, MANIFEST_FILE, readManifest, TOKENIZER_FILE, WEIGHTS_FILE } from '../../model/checkpoint';
import { evaluate } from '../../model/evaluate';
import { disposeWeights, initWeights } from '../../model/gpt';
import { hashSafetensorsFile } from '../../model/hash';
import { ByteTokenizer, evaluationBitsPerByte, loadTokenizer, type Tokenizer } from '../../model/tokenizer';
import { scoreRound } from './scoring';
import type { CheckpointStore } from '../../infra/store/store';
import type { ChainScore } from '../../infra/chain/chain';

/** One hotkey's commitments in a round: commit 1 inside MinerCommit1, commit 2 after it and before MinerCommit2 ends. */
export interface Submission {
  hotkey: string;
  commit1?: { block: number; payload: string };
  commit2?: { block: number; payload: string };
}

/** Scores one round's submissions: details per hotkey (loss NaN + reason when invalid). */
export type LocalValidator = (
  round: number,
  submissions: Submission[],
) => Promise<Map<string, ChainScore['details'] & {}>>;

export interface LocalValidatorOptions {
  /** The validator's own held-out documents (same distribution as the miners' data), encoded with each model's tokenizer. */
  heldOutText: () => Promise<string[]>;
  /** Where the miners' checkpoints are, by model hash. */
  store: () => CheckpointStore;
  evalMaxTokens: number;
  log?: (msg: string) => void;
}

export function createLocalValidator(opts: LocalValidatorOptions): LocalValidator {
  const log = opts.log ?? (() => undefined);
  return async (round, submissions) => {
    await initBackend('auto', log);
    const docs = await opts.heldOutText();
    const measured: { hotkey: string; loss: number; baselineLoss: number; bitsPerByte?: number; reason?: string }[] =
      [];
    for (const sub of submissions) {
      const m = await measure(sub, docs).catch((err: Error) => ({
        loss: NaN,
        baselineLoss: NaN,
        bitsPerByte: undefined,
        reason: err.message,
      }));
      log(
        `local validator: round ${round} ${sub.hotkey}: loss ${m.loss.toFixed(4)} baseline ${m.baselineLoss.toFixed(4)}${m.bitsPerByte !== undefined ? ` (${m.bitsPerByte.toFixed(4)} bits/byte)` : ''}${m.reason ? ` (${m.reason})` : ''}`,
      );
      measured.push({ hotkey: sub.hotkey, ...m });
    }
    const scores = scoreRound(measured.map((m) => ({ hotkey: m.hotkey, loss: m.loss, baselineLoss: m.baselineLoss })));
    return new Map(
      scores.map((s, i) => [
        s.hotkey,
        {
          round,
          loss: s.loss,
          baselineLoss: measured[i].baselineLoss,
          rawScore: s.rawScore,
          rank: s.rank,
          reward: s.reward,
          reason: measured[i].reason,
        },
      ]),
    );
  };

  async function measure(
    sub: Submission,
    docs: string[],
  ): Promise<{ loss: number; baselineLoss: number; bitsPerByte?: number; reason?: string }> {
    const sig = sub.commit1 && decodeSignatureCommit(sub.commit1.payload);
    const loc = sub.commit2 && decodeLocationCommit(sub.commit2.payload);
    if (!sig) throw new Error('no signature commit (commit 1) inside MinerCommit1');
    if (!loc) throw new Error('no hash+location commit (commit 2) between MinerCommit1 and the end of MinerCommit2');
    if (!signatureVerify(loc.h, Buffer.from(sig.m, 'base64url'), sub.hotkey).isValid) {
      throw new Error('commit-1 signature does not verify for the committed hash and hotkey');
    }
    const store = opts.store();
    const file = await store.get(`${checkpointKey(loc.h)}/${WEIGHTS_FILE}`);
    const manifest = await readManifest(await store.get(`${checkpointKey(loc.h)}/${MANIFEST_FILE}`));
    const actual = await hashSafetensorsFile(file);
    if (actual !== loc.h) throw new Error(`checkpoint hash ${actual} differs from the committed ${loc.h}`);
    const tokenizer = await submittedTokenizer(store, checkpointKey(loc.h), manifest.tokenizer);
    if (tokenizer.vocabSize !== manifest.model.vocabSize) {
      throw new Error(
        `the checkpoint's ${TOKENIZER_FILE} has ${tokenizer.vocabSize} tokens but its model's vocabulary is ${manifest.model.vocabSize}`,
      );
    }
    const tokens = tokenizer.encodeDocuments(docs);
    const weights = await loadWeights(file, manifest.model);
    const base = initWeights(manifest.model, manifest.model.seed);
    try {
      const evalOpts = { maxTokens: opts.evalMaxTokens, batchSize: 16 };
      const r = evaluate(weights, manifest.model, tokens, evalOpts);
      return {
        loss: r.loss,
        baselineLoss: evaluate(base, manifest.model, tokens, evalOpts).loss,
        bitsPerByte: evaluationBitsPerByte(tokenizer, tokens, r.loss, r.tokens),
      };
    } finally {
      disposeWeights(weights);
      disposeWeights(base);
    }
  }
}

/** The tokenizer published beside the weights; checkpoints from before tokenizers were published are byte-level. */
async function submittedTokenizer(
  store: CheckpointStore,
  key: string,
  declared: string | undefined,
): Promise<Tokenizer> {
  if (await store.exists(`${key}/${TOKENIZER_FILE}`)) return loadTokenizer(await store.get(`${key}/${TOKENIZER_FILE}`));
  if (declared === undefined || declared === 'bytes') return new ByteTokenizer();
  throw new Error(`the checkpoint declares a '${declared}' tokenizer but has no ${TOKENIZER_FILE}`);
}
