// A Gradients dataset row → a fine-tuning example, the way the miner G.O.D shipped before 6.0 trains
// it (rayonlabs/G.O.D at 3ee725a: core/config/config_handler.py builds the axolotl dataset entry,
// miner/logic/job_handler.py rewrites DPO columns), so our model sees the text theirs would:
// - instruct: axolotl's user-defined prompt (prompt_strategies/user_defined.py, alpaca_w_system.py):
//   system_format(system) + format(instruction, input) — or no_input_format(instruction) when the
//   input is empty — then the output, the only trained part; no field_output means a completion.
// - DPO: the miner fills prompt_format / chosen_format / rejected_format by plain replacement, then
//   axolotl's `chatml` DPO strategy wraps them (prompt_strategies/dpo/chatml.py).
// - chat: the messages through the named chat template; only assistant turns (content and the
//   template's end-of-turn token) are trained, as axolotl's chat_template strategy does by default.
import { Template } from '@huggingface/jinja';
import {
  ChatTemplateDatasetTypeSchema,
  DpoDatasetTypeSchema,
  InstructTextDatasetTypeSchema,
  type ChatTemplateDatasetType,
  type DpoDatasetType,
  type InstructTextDatasetType,
  type TaskType,
} from '../subnets/gradients/protocol';
import { chatTemplateFor, type ChatTemplate } from './chat-templates';
import type { PreferenceExample, SftExample } from './examples';

export type Row = Record<string, unknown>;

/** A row that cannot be formatted: names the row (1-based) and the column or field. */
export class FormatError extends Error {
  override name = 'FormatError';
}

export type RowFormatter =
  | { kind: 'sft'; format(row: Row, rowNumber: number): SftExample }
  | { kind: 'preference'; format(row: Row, rowNumber: number): PreferenceExample };

/**
 * Parses the job's dataset_type for its task type once (compiling a chat template) and returns
 * the function for its rows. Bad dataset_type → an error naming the field.
 */
export function rowFormatter(taskType: TaskType, datasetType: unknown): RowFormatter {
  const parse = <T>(schema: { safeParse(v: unknown): { success: boolean; data?: T; error?: unknown } }): T => {
    const r = schema.safeParse(datasetType ?? {});
    if (!r.success) throw new FormatError(`dataset_type for ${taskType} is invalid: ${String(r.error)}`);
    return r.data as T;
  };
  switch (taskType) {
    case 'InstructTextTask': {
      const t = parse<InstructTextDatasetType>(InstructTextDatasetTypeSchema);
      return { kind: 'sft', format: (row, n) => formatInstruct(row, t, n) };
    }
    case 'DpoTask': {
      const t = parse<DpoDatasetType>(DpoDatasetTypeSchema);
      return { kind: 'preference', format: (row, n) => formatDpo(row, t, n) };
    }
    case 'ChatTask': {
      const t = parse<ChatTemplateDatasetType>(ChatTemplateDatasetTypeSchema);
      const chat = compileChat(t);
      return { kind: 'sft', format: (row, n) => chat(row, n) };
    }
    default:
      throw new FormatError(
        `task type ${taskType} has no text examples to prepare (GRPO and image jobs are not SFT/DPO)`,
      );
  }
}

// ---------------------------------------------------------------- instruct

export function formatInstruct(row: Row, t: InstructTextDatasetType, rowNumber: number): SftExample {
  // G.O.D: no output column → axolotl's "completion" type on field_instruction (axolotl's own
  // default column 'text' when that is unset too), the whole text trained.
  if (!t.field_output) {
    const column = t.field_instruction ?? 'text';
    return { parts: [{ text: required(row, column, 'field_instruction', rowNumber), train: true }] };
  }
  if (!t.field_instruction) throw new FormatError('dataset_type.field_instruction is not set');
  const instruction = required(row, t.field_instruction, 'field_instruction', rowNumber);
  const output = required(row, t.field_output, 'field_output', rowNumber);
  const input = t.field_input ? optional(row, t.field_input) : '';
  // axolotl: the row's system column when field_system is set, else the fixed system_prompt.
  const system = t.field_system ? optional(row, t.field_system) : (t.system_prompt ?? '');
  const systemText = system && t.system_format ? pyFormat(t.system_format, { system }, 'system_format', rowNumber) : '';
  const format = t.format ?? (t.field_input ? '{instruction} {input}' : '{instruction}');
  const noInputFormat = t.no_input_format ?? '{instruction}';
  const turn = input
    ? pyFormat(format, { instruction, input }, 'format', rowNumber)
    : pyFormat(noInputFormat, { instruction }, 'no_input_format', rowNumber);
  return parts([systemText + turn, false], [output, true]);
}

/**
 * Python's str.format with named fields only, as axolotl applies format strings: `{name}` is
 * replaced, `{{` and `}}` are literal braces, any other field is an error (Python: KeyError).
 */
export function pyFormat(template: string, values: Record<string, string>, field: string, rowNumber?: number): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if ((c === '{' || c === '}') && template[i + 1] === c) {
      out += c;
      i++;
    } else if (c === '{') {
      const end = template.indexOf('}', i);
      const name = end > i ? template.slice(i + 1, end) : undefined;
      if (name === undefined || !(name in values)) {
        const where = rowNumber === undefined ? '' : `row ${rowNumber}: `;
        throw new FormatError(
          `${where}dataset_type.${field} '${template}' uses ${name === undefined ? 'an unclosed {' : `{${name}}`}; ` +
            `it may use ${Object.keys(values)
              .map((k) => `{${k}}`)
              .join(', ')} (and {{ }} for literal braces)`,
        );
      }
      out += values[name];
      i = end;
    } else if (c === '}') {
      throw new FormatError(`dataset_type.${field} '${template}' has a single '}'; write '}}' for a literal brace`);
    } else out += c;
  }
  return out;
}

// ---------------------------------------------------------------- DPO

export function formatDpo(row: Row, t: DpoDatasetType, rowNumber: number): PreferenceExample {
  for (const f of ['field_prompt', 'field_chosen', 'field_rejected'] as const)
    if (!t[f]) throw new FormatError(`dataset_type.${f} is not set`);
  let prompt = required(row, t.field_prompt!, 'field_prompt', rowNumber);
  let chosen = required(row, t.field_chosen!, 'field_chosen', rowNumber);
  let rejected = required(row, t.field_rejected!, 'field_rejected', rowNumber);
  // A system column, when mapped and present (pandas: notna), fills {system}; else it stays literal.
  const system = t.field_system && present(row, t.field_system) ? cellText(row[t.field_system]) : undefined;
  const sub = (s: string, name: string, value: string | undefined) =>
    value === undefined ? s : s.split(name).join(value);
  // miner/logic/job_handler.py _dpo_format_*: plain replacement in this order, each column
  // formatted in turn (chosen and rejected see the already formatted prompt).
  if (t.prompt_format && t.prompt_format !== '{prompt}')
    prompt = sub(sub(t.prompt_format, '{prompt}', prompt), '{system}', system);
  if (t.chosen_format && t.chosen_format !== '{chosen}')
    chosen = sub(sub(sub(t.chosen_format, '{chosen}', chosen), '{prompt}', prompt), '{system}', system);
  if (t.rejected_format && t.rejected_format !== '{rejected}')
    rejected = sub(sub(sub(t.rejected_format, '{rejected}', rejected), '{prompt}', prompt), '{system}', system);
  // axolotl dpo/chatml.py: a system block only when the system text is non-empty.
  const head = system ? `<|im_start|>system\n${system}<|im_end|>\n` : '';
  return {
    prompt: `${head}<|im_start|>user\n${prompt}<|im_end|>\n<|im_start|>assistant\n`,
    chosen: `${chosen}<|im_end|>`,
    rejected: `${rejected}<|im_end|>`,
  };
}

// ---------------------------------------------------------------- chat

export interface ChatMessage {
  role: string;
  content: string;
}

function compileChat(t: ChatTemplateDatasetType): (row: Row, rowNumber: number) => SftExample {
  const template = chatTemplateFor(t.chat_template ?? 'chatml');
  let compiled: Template;
  try {
    compiled = new Template(template.source);
  } catch (e) {
    throw new FormatError(`dataset_type.chat_template does not parse as Jinja: ${(e as Error).message}`);
  }
  const column = t.chat_column ?? 'conversations';
  const roleField = t.chat_role_field ?? 'from';
  const contentField = t.chat_content_field ?? 'value';
  // G.O.D maps exactly these two references (config_handler.py `roles`); 'system' passes as itself.
  const roles: Record<string, string> = {
    system: 'system',
    [t.chat_user_reference ?? 'user']: 'user',
    [t.chat_assistant_reference ?? 'assistant']: 'assistant',
  };
  return (row, rowNumber) => {
    const turns = jsonIfText(row[column]);
    if (turns === undefined || turns === null)
      throw new FormatError(`row ${rowNumber}: column '${column}' (chat_column) is missing`);
    if (!Array.isArray(turns) || turns.length === 0)
      throw new FormatError(`row ${rowNumber}: column '${column}' (chat_column) is not a non-empty list of messages`);
    const messages = turns.map((m: unknown, i): ChatMessage => {
      const msg = (m ?? {}) as Row;
      const where = `row ${rowNumber}, ${column}[${i}]`;
      const rawRole = msg[roleField];
      if (typeof rawRole !== 'string') throw new FormatError(`${where}: '${roleField}' (chat_role_field) is missing`);
      const role = roles[rawRole];
      if (!role)
        throw new FormatError(
          `${where}: role '${rawRole}' is neither chat_user_reference '${t.chat_user_reference}' nor chat_assistant_reference '${t.chat_assistant_reference}' nor 'system'`,
        );
      const content = msg[contentField];
      if (typeof content !== 'string')
        throw new FormatError(`${where}: '${contentField}' (chat_content_field) is missing or not text`);
      return { role, content };
    });
    return renderChat(compiled, template, messages, rowNumber);
  };
}

/**
 * Renders messages and splits the text so only assistant turns are trained. Each turn is the
 * difference between the renderings of the conversation up to it and up to the turn before; an
 * assistant turn's header is what the template writes for add_generation_prompt, the rest (content
 * up to and including the end-of-turn token) is trained.
 */
export function renderChat(
  compiled: Template,
  template: ChatTemplate,
  messages: ChatMessage[],
  rowNumber = 0,
): SftExample {
  const render = (upTo: number, addGenerationPrompt = false) =>
    compiled.render({
      messages: messages.slice(0, upTo),
      add_generation_prompt: addGenerationPrompt,
      bos_token: template.bosToken,
      eos_token: template.eosToken,
    });
  const out: [string, boolean][] = [];
  let before = render(0);
  if (before) out.push([before, false]);
  for (let i = 0; i < messages.length; i++) {
    const upTo = render(i + 1);
    if (!upTo.startsWith(before))
      throw new FormatError(
        `row ${rowNumber}: chat template '${template.name}' does not render conversations incrementally (turn ${i} changes the text before it); cannot tell which tokens to train`,
      );
    const turn = upTo.slice(before.length);
    if (messages[i].role !== 'assistant') out.push([turn, false]);
    else out.push(...splitAssistantTurn(turn, render(i, true).slice(before.length), messages[i].content, template));
    before = upTo;
  }
  return parts(...out);
}

function splitAssistantTurn(
  turn: string,
  header: string,
  content: string,
  template: ChatTemplate,
): [string, boolean][] {
  let start = header && turn.startsWith(header) ? header.length : -1;
  if (start < 0) {
    const at = turn.indexOf(content.trim());
    start = at >= 0 ? at : 0;
  }
  let end = turn.length;
  const eot = template.endOfTurn;
  if (eot) {
    const at = turn.lastIndexOf(eot);
    if (at >= start) end = at + eot.length;
  } else {
    // No end-of-turn token known: train the content and leave trailing whitespace to the template.
    end = start + turn.slice(start).trimEnd().length;
  }
  return [
    [turn.slice(0, start), false],
    [turn.slice(start, end), true],
    [turn.slice(end), false],
  ];
}

// ---------------------------------------------------------------- cells

function present(row: Row, column: string): boolean {
  return row[column] !== undefined && row[column] !== null;
}

/** A cell as text, the way pandas' str() writes it; missing or null → error naming row and field. */
function required(row: Row, column: string, field: string, rowNumber: number): string {
  if (!present(row, column)) throw new FormatError(`row ${rowNumber}: column '${column}' (${field}) is missing`);
  return cellText(row[column]);
}

function optional(row: Row, column: string): string {
  return present(row, column) ? cellText(row[column]) : '';
}

/** CSV cells are text: a list of messages arrives as its JSON. */
function jsonIfText(v: unknown): unknown {
  if (typeof v !== 'string' || !v.trimStart().startsWith('[')) return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function cellText(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Joins adjacent parts with the same flag and drops empty ones. */
function parts(...ps: [string, boolean][]): SftExample {
  const out: SftExample['parts'] = [];
  for (const [text, train] of ps) {
    if (!text) continue;
    const last = out[out.length - 1];
    if (last && last.train === train) last.text += text;
    else out.push({ text, train });
  }
  return { parts: out };
}
