// Maps domain errors to Temporal failures: input that can never succeed fails at once (non-retryable,
// with a message that says what to fix); anything else (network, storage, a crash) is retried.
import { ApplicationFailure } from '@temporalio/common';

/** Error class names that retrying cannot fix. */
const PERMANENT = new Set([
  'InvalidInputError',
  'CorpusError',
  'WalletError',
  'ChainRejectedError',
  'CommitTooLargeError',
  'ImmutableObjectError',
  'MissedWindowError',
  'CheckpointError',
  'CheckpointShapeError', // e.g. training.initFrom saved with another model config
  'TokenizerFileError',
  'PreflightError',
  'CommitOverwrittenError', // another cycle on the hotkey committed over our commit 1
  'ChainResetError',
  'LrFindInconclusiveError', // too few points to read a suggestion: the loop trains at the configured LR
  'InvalidStoreKeyError', // an absolute or '..' store key: a bug or hostile input
  'ObjectNotFoundError', // a named store object (e.g. training.initFrom's state) is absent: retrying reads the same absence
  'ModelTooLargeError', // the model and batch cannot fit this machine's memory
  'BackendAbortError', // the TensorFlow.js backend aborted (e.g. out of wasm memory); retrying the same task aborts again
  'TrainerRestartsExhaustedError', // an external trainer crashed more often than trainer.maxRestarts allows
  'BaseModelError', // a Gradients job's base model is absent from the hub or not one the trainer can fine-tune
  'DataPreparationUnavailableError', // this build cannot prepare Gradients datasets
]);

export async function mapErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && PERMANENT.has(err.name)) throw ApplicationFailure.nonRetryable(err.message, err.name);
    throw err;
  }
}

/** A commit window closed before we could use it. */
export class MissedWindowError extends Error {
  override name = 'MissedWindowError';
}
