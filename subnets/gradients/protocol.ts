// Gradients (subnet 56) wire format: the payloads validators send to a miner's endpoints and the
// answers they read, as rayonlabs/G.O.D declared them before release 6.0 (core/models/
// payload_models.py and utility_models.py at 3ee725a, the parent of 19511fcd). Field names are
// the wire's (snake_case). Pydantic ignores unknown fields, so these schemas do too.
import { z } from 'zod';

export const TASK_TYPES = ['InstructTextTask', 'DpoTask', 'GrpoTask', 'ChatTask', 'ImageTask'] as const;
export const TaskTypeSchema = z.enum(TASK_TYPES);
export type TaskType = z.infer<typeof TaskTypeSchema>;

/** Where `dataset` points: a local file (csv, json), a Hugging Face dataset name (hf), or a URL (s3). */
export const FileFormatSchema = z.enum(['csv', 'json', 'hf', 's3']);

const optionalText = () => z.string().nullable().optional();

/** Instruction tuning: the columns that hold each field, and how they are joined into a prompt. */
export const InstructTextDatasetTypeSchema = z.object({
  system_prompt: optionalText().default(''),
  system_format: optionalText().default('{system}'),
  field_system: optionalText(),
  field_instruction: optionalText(),
  field_input: optionalText(),
  field_output: optionalText(),
  format: optionalText(),
  no_input_format: optionalText(),
  field: optionalText(),
});

export const DpoDatasetTypeSchema = z.object({
  field_prompt: optionalText(),
  field_system: optionalText(),
  field_chosen: optionalText(),
  field_rejected: optionalText(),
  prompt_format: optionalText().default('{prompt}'),
  chosen_format: optionalText().default('{chosen}'),
  rejected_format: optionalText().default('{rejected}'),
});

export const RewardFunctionSchema = z.object({
  reward_id: optionalText(),
  reward_func: z.string(), // Python source
  reward_weight: z.number().min(0),
  func_hash: optionalText(),
  is_generic: z.boolean().nullable().optional(),
  is_manual: z.boolean().nullable().optional(),
});

export const GrpoDatasetTypeSchema = z.object({
  field_prompt: optionalText(),
  reward_functions: z.array(RewardFunctionSchema).nullable().optional().default([]),
  extra_column: optionalText(),
});

export const ChatTemplateDatasetTypeSchema = z.object({
  chat_template: optionalText().default('chatml'),
  chat_column: optionalText().default('conversations'),
  chat_role_field: optionalText().default('from'),
  chat_content_field: optionalText().default('value'),
  chat_user_reference: optionalText().default('user'),
  chat_assistant_reference: optionalText().default('assistant'),
});

export type InstructTextDatasetType = z.infer<typeof InstructTextDatasetTypeSchema>;
export type DpoDatasetType = z.infer<typeof DpoDatasetTypeSchema>;
export type GrpoDatasetType = z.infer<typeof GrpoDatasetTypeSchema>;
export type ChatTemplateDatasetType = z.infer<typeof ChatTemplateDatasetTypeSchema>;

/** `POST /task_offer/` and `/task_offer_image/`: the validator waits 3 s for the answer. */
export const MinerTaskOfferSchema = z.object({
  ds_size: z.number().int().nullable().optional(),
  model: z.string(),
  hours_to_complete: z.number(),
  task_id: z.string(),
  task_type: TaskTypeSchema,
  model_params_count: z.number().int().nullable().optional(),
});
export type MinerTaskOffer = z.infer<typeof MinerTaskOfferSchema>;

export interface MinerTaskResponse {
  message: string;
  accepted: boolean;
}

const TrainRequestShape = {
  model: z.string().min(1),
  task_id: z.string(),
  hours_to_complete: z.number(),
  expected_repo_name: optionalText(),
};

/**
 * `POST /start_training/` (instruct, DPO, chat). G.O.D types dataset_type as a pydantic union of
 * the four text shapes; which one is meant follows from the offer's task_type (the request itself
 * does not say), so it is kept as sent here and parsed by `datasetTypeFor`.
 */
export const TrainRequestTextSchema = z.object({
  ...TrainRequestShape,
  dataset: z.string().min(1),
  dataset_type: z.record(z.string(), z.unknown()),
  file_format: FileFormatSchema,
});
export type TrainRequestText = z.infer<typeof TrainRequestTextSchema>;

/** `POST /start_training_grpo/`. */
export const TrainRequestGrpoSchema = z.object({
  ...TrainRequestShape,
  dataset: z.string().min(1),
  dataset_type: GrpoDatasetTypeSchema,
  file_format: FileFormatSchema,
});
export type TrainRequestGrpo = z.infer<typeof TrainRequestGrpoSchema>;

/** `POST /start_training_image/`. */
export const TrainRequestImageSchema = z.object({
  ...TrainRequestShape,
  dataset_zip: z.string().min(1),
  model_type: z.enum(['flux', 'sdxl']).default('sdxl'),
});
export type TrainRequestImage = z.infer<typeof TrainRequestImageSchema>;

/** The answer to every start_training endpoint. */
export interface TrainResponse {
  message: string;
  task_id: string;
}

/** `GET /get_latest_model_submission/{task_id}`. */
export interface MinerSubmission {
  repo: string;
  model_hash: string | null;
}

/** The text dataset_type shape for a task type (instruct, DPO, chat; GRPO has its own endpoint). */
export function datasetTypeSchemaFor(taskType: TaskType) {
  switch (taskType) {
    case 'InstructTextTask':
      return InstructTextDatasetTypeSchema;
    case 'DpoTask':
      return DpoDatasetTypeSchema;
    case 'ChatTask':
      return ChatTemplateDatasetTypeSchema;
    case 'GrpoTask':
      return GrpoDatasetTypeSchema;
    case 'ImageTask':
      return null;
  }
}
