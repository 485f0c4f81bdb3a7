// Connito's commitment payloads: the one place they are written and read. Compact JSON of at most
// 128 bytes (a hotkey holds one commitment; commit 2 overwrites commit 1):
//   commit 1 (inside MinerCommit1): {"m":"<base64url sr25519 signature of the model hash, no padding>"}
//   commit 2 (before MinerCommit2 ends): {"h":"<model hash>","u":"<store URI>","v":1}
// Commit 1 is Connito's wire format; commit 2 still names our store (the Hugging Face form
// {"e","h","v","r","rv"} arrives with the Hugging Face transport).
export const MAX_COMMIT_BYTES = 128;
export const COMMIT_FORMAT_VERSION = 1;

export interface SignatureCommit {
  m: string;
}

export interface LocationCommit {
  h: string;
  u: string;
  v: number;
}

export function encodeSignatureCommit(signatureBase64url: string): string {
  return encode({ m: signatureBase64url });
}

export function encodeLocationCommit(hash: string, location: string): string {
  return encode({ h: hash, u: location, v: COMMIT_FORMAT_VERSION });
}

function encode(payload: SignatureCommit | LocationCommit): string {
  const text = JSON.stringify(payload);
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_COMMIT_BYTES) {
    throw new CommitTooLargeError(
      `commit payload is ${bytes} bytes; the limit is ${MAX_COMMIT_BYTES} (shorten the store URI: ${'u' in payload ? payload.u : ''})`,
    );
  }
  return text;
}

export function decodeSignatureCommit(text: string): SignatureCommit | undefined {
  try {
    const v = JSON.parse(text) as Partial<SignatureCommit>;
    return typeof v.m === 'string' ? { m: v.m } : undefined;
  } catch {
    return undefined;
  }
}

export function decodeLocationCommit(text: string): LocationCommit | undefined {
  try {
    const v = JSON.parse(text) as Partial<LocationCommit>;
    return typeof v.h === 'string' && typeof v.u === 'string' && typeof v.v === 'number'
      ? { h: v.h, u: v.u, v: v.v }
      : undefined;
  } catch {
    return undefined;
  }
}

export class CommitTooLargeError extends Error {
  override name = 'CommitTooLargeError';
}

/** Where a checkpoint lives in a store, by model hash (content-addressed). */
export function checkpointKey(hash: string): string {
  return `checkpoints/${hash}`;
}
