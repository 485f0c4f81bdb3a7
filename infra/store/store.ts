// The checkpoint store port: where curated data and checkpoints live, shared by every worker.
// Keys are relative paths ("checkpoints/<hash>/model.safetensors"); `uri` names the store itself.

export interface CheckpointStore {
  /** Base URI, e.g. file:///var/minerflow/store or s3://bucket/prefix. Goes on chain in commit 2. */
  readonly uri: string;
  /**
   * Copies a local file in under `key`, atomically (readers never see a partial object).
   * With `immutable`, an existing object is never replaced: the same bytes are accepted (a retry),
   * different bytes are refused.
   */
  put(key: string, localFile: string, opts?: { immutable?: boolean }): Promise<void>;
  /** A local path holding the object's bytes (downloaded and verified if the store is remote). */
  get(key: string): Promise<string>;
  exists(key: string): Promise<boolean>;
  /** Removes an object (absent is fine). Only for scratch objects: published checkpoints are never deleted. */
  delete(key: string): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError';
}

export class ImmutableObjectError extends Error {
  override name = 'ImmutableObjectError';
}
