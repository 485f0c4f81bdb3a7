// Fine-tuning examples as they travel from data preparation to the trainer: one JSON object per
// line of a dataset's .jsonl files (DatasetRef.kind says which shape). Plain text here; the
// trainer tokenizes with the base model's tokenizer.

/**
 * Supervised fine-tuning (instruct, chat): the text in order, each part marked whether its tokens
 * count in the loss (responses: yes; system, instruction, user turns, template glue: no).
 */
export interface SftExample {
  parts: { text: string; train: boolean }[];
}

/** A preference pair for DPO: the same prompt, a chosen and a rejected response. */
export interface PreferenceExample {
  prompt: string;
  chosen: string;
  rejected: string;
}
