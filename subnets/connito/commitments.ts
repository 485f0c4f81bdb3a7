// Connito's commitment payloads: the one place they are written and read. Connito (chain.py at
// 0c936fa) serialises its pydantic commit models with model_dump(by_alias=True, exclude_none=True)
// and json.dumps(separators=(",", ":")): compact JSON, keys in field order, absent fields omitted,
// at most 128 bytes (a hotkey holds one commitment; commit 2 overwrites commit 1).
//   miner commit 1 (inside MinerCommit1): SignedModelHashChainCommit {"m":"<base64url sr25519 signature
//     of the UTF-8 hex model hash, no padding>"}
//   miner commit 2 (before MinerCommit2 ends): MinerChainCommit {"e":<expert group>,"h":"<model hash>",
//     "v":<global_ver>,"r":"<HF repo id>","rv":"<first 7 chars of the HF commit sha>"}
//   validator commit 2: ValidatorChainCommit {"h","v","e","s":<miner_seed>,"r","rv"}
export const MAX_COMMIT_BYTES = 128; // CHAIN_COMMIT_MAX_BYTES
export const MAX_HF_REPO_ID_CHARS = 32; // CHAIN_COMMIT_MAX_HF_REPO_ID_CHARS
export const HF_REVISION_LENGTH = 7; // HF_CHAIN_REVISION_LENGTH

export interface SignatureCommit {
  m: string;
}

/** A miner's commit 2 (MinerChainCommit without the legacy block "b" and inner_opt "i"). */
export interface LocationCommit {
  e?: number; // expert group id
  h: string; // model hash, 48 hex chars
  v: number; // global_ver: the global model version the round trained from
  r?: string; // Hugging Face repo id
  rv?: string; // first 7 hex chars of the Hugging Face commit sha
}

/** A validator's commit 2 (ValidatorChainCommit): the global model it publishes. */
export interface ValidatorCommit {
  h: string; // global model hash
  v: number; // global_ver (the MinerCommit1 start block it was committed at)
  e?: number; // expert group id
  s?: number; // miner_seed: the validator's miner-assignment seed (Connito reads absent as 0)
  r?: string;
  rv?: string;
}

export function encodeSignatureCommit(signatureBase64url: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(signatureBase64url))
    throw new CommitFormatError(`commit 1 field "m" must be base64url without padding, got '${signatureBase64url}'`);
  return withinBudget(JSON.stringify({ m: signatureBase64url }));
}

/** Commit 2 in Connito's exact bytes; throws naming the field (or the byte budget) that breaks a rule. */
export function encodeLocationCommit(c: LocationCommit): string {
  const problem = locationProblem(c);
  if (problem) throw new CommitFormatError(`commit 2: ${problem}`);
  const ordered: LocationCommit = { e: c.e, h: c.h, v: c.v, r: c.r, rv: c.rv }; // Connito's key order
  return withinBudget(JSON.stringify(ordered)); // JSON.stringify drops undefined fields
}

function withinBudget(text: string): string {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_COMMIT_BYTES)
    throw new CommitTooLargeError(`commit payload is ${bytes} bytes; the limit is ${MAX_COMMIT_BYTES}: ${text}`);
  return text;
}

function locationProblem(c: LocationCommit): string | undefined {
  if (c.e !== undefined && !isUint(c.e)) return `field "e" (expert group) must be an integer ≥ 0, got ${c.e}`;
  if (!isModelHash(c.h)) return `field "h" (model hash) must be 48 lowercase hex chars, got '${c.h}'`;
  if (!isUint(c.v)) return `field "v" (global_ver) must be an integer ≥ 0, got ${c.v}`;
  if (c.r !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(c.r))
    return `field "r" (Hugging Face repo id) must look like owner/name, got '${c.r}'`;
  if (c.r !== undefined && c.r.length > MAX_HF_REPO_ID_CHARS)
    return `field "r" (Hugging Face repo id) is ${c.r.length} chars; the limit is ${MAX_HF_REPO_ID_CHARS}: '${c.r}'`;
  if (c.rv !== undefined && !new RegExp(`^[0-9a-f]{${HF_REVISION_LENGTH}}$`).test(c.rv))
    return `field "rv" (revision) must be the first ${HF_REVISION_LENGTH} lowercase hex chars of the commit sha, got '${c.rv}'`;
  if ((c.r === undefined) !== (c.rv === undefined))
    return `fields "r" and "rv" go together (a repo without a pinned revision, or the reverse, cannot be downloaded)`;
  return undefined;
}

/** A validator's commit 2, keys in ValidatorChainCommit's field order (h, v, e, s, r, rv). */
export function encodeValidatorCommit(c: ValidatorCommit): string {
  if (!isModelHash(c.h))
    throw new CommitFormatError(`validator commit 2: field "h" must be 48 lowercase hex chars, got '${c.h}'`);
  const problem = locationProblem({ h: c.h, v: c.v, e: c.e, r: c.r, rv: c.rv });
  if (problem) throw new CommitFormatError(`validator commit 2: ${problem}`);
  return withinBudget(JSON.stringify({ h: c.h, v: c.v, e: c.e, s: c.s, r: c.r, rv: c.rv }));
}

export function decodeSignatureCommit(text: string): SignatureCommit | undefined {
  const v = parseObject(text);
  return v && typeof v.m === 'string' ? { m: v.m } : undefined;
}

/** A miner's commit 2, or undefined when the text is not one that encodeLocationCommit would write. */
export function decodeLocationCommit(text: string): LocationCommit | undefined {
  const v = parseObject(text);
  if (!v) return undefined;
  const c = { e: v.e, h: v.h, v: v.v, r: v.r, rv: v.rv } as LocationCommit;
  if (locationProblem(c)) return undefined;
  return dropUndefined(c);
}

/** A validator's commit 2; its commit 1 is a SignatureCommit ({"m"}), read with decodeSignatureCommit. */
export function decodeValidatorCommit(text: string): ValidatorCommit | undefined {
  const v = parseObject(text);
  if (!v || typeof v.h !== 'string' || !/^[0-9a-f]+$/.test(v.h) || !isUint(v.v)) return undefined;
  for (const k of ['e', 's'] as const) if (v[k] !== undefined && !isUint(v[k])) return undefined;
  for (const k of ['r', 'rv'] as const) if (v[k] !== undefined && typeof v[k] !== 'string') return undefined;
  return dropUndefined({ h: v.h, v: v.v, e: v.e, s: v.s, r: v.r, rv: v.rv } as ValidatorCommit);
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
}

function isUint(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

function isModelHash(x: unknown): x is string {
  return typeof x === 'string' && /^[0-9a-f]{48}$/.test(x);
}

/** A payload that breaks one of Connito's field rules. */
export class CommitFormatError extends Error {
  override name = 'CommitFormatError';
}

export class CommitTooLargeError extends CommitFormatError {
  override name = 'CommitTooLargeError';
}

/** Where a checkpoint lives in a store, by model hash (content-addressed). */
export function checkpointKey(hash: string): string {
  return `checkpoints/${hash}`;
}
