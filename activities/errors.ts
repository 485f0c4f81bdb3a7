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
  'CommitOverwrittenError', // another cycle on the hotkey committed over our commit 1
  'ChainResetError',
  'LrFindInconclusiveError', // too few points to read a suggestion: the loop trains at the configured LR
  'InvalidStoreKeyError', // an absolute or '..' store key: a bug or hostile input
  'ObjectNotFoundError', // a named store object (e.g. training.initFrom's state) is absent: retrying reads the same absence
  'ModelTooLargeError', // the model and batch cannot fit this machine's memory
  'BackendAbortError', // the TensorFlow.js backend aborted (e.g. out of wasm memory); retrying the same task aborts again
  'TrainerRestartsExhaustedError', // an external trainer crashed more often than trainer.maxRestarts allows
  'ExampleFormatError', // a fine-tuning dataset line that is not the example shape its kind needs
  'BaseModelError', // a base model absent from the hub, missing a file, or with a tensor of the wrong shape
  'DatasetError', // a Gradients dataset that cannot be read: 4xx, too big, malformed, outside the allowed roots
  'FormatError', // a dataset row that does not fit its dataset_type (names the row and column)
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
