// Gradients rows → fine-tuning examples: instruct formats (format, no_input_format, system_format,
// system_prompt), DPO formats, chat templates rendered by @huggingface/jinja and compared with
// Python's jinja2 set up as transformers' apply_chat_template sets it up; train flags on exactly
// the response text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Template } from '@huggingface/jinja';
import { CHAT_TEMPLATES, chatTemplateFor } from '../finetune/chat-templates';
import type { SftExample } from '../finetune/examples';
import { FormatError, pyFormat, renderChat, rowFormatter, type ChatMessage } from '../finetune/format';
import { offlineJobData } from '../finetune/offline-data';
import { python, pythonScript } from './helpers/python';

const trained = (e: SftExample) =>
  e.parts
    .filter((p) => p.train)
    .map((p) => p.text)
    .join('');
const text = (e: SftExample) => e.parts.map((p) => p.text).join('');

function sft(taskType: 'InstructTextTask' | 'ChatTask', datasetType: Record<string, unknown>, row: object, n = 1) {
  const f = rowFormatter(taskType, datasetType);
  assert.equal(f.kind, 'sft');
  return f.format(row as Record<string, unknown>, n) as SftExample;
}

const INSTRUCT = {
  field_system: 'sys',
  field_instruction: 'q',
  field_input: 'ctx',
  field_output: 'a',
  format: '### Instruction:\n{instruction}\n### Input:\n{input}\n### Response:\n',
  no_input_format: '### Instruction:\n{instruction}\n### Response:\n',
  system_format: '### System:\n{system}\n',
};

test('instruct: system_format + format with input; only the output is trained', () => {
  const e = sft('InstructTextTask', INSTRUCT, { sys: 'Be terse.', q: 'Add.', ctx: '2 and 3', a: '5' });
  assert.deepEqual(e.parts, [
    {
      text: '### System:\nBe terse.\n### Instruction:\nAdd.\n### Input:\n2 and 3\n### Response:\n',
      train: false,
    },
    { text: '5', train: true },
  ]);
});

test('instruct: an empty or missing input uses no_input_format; no system text when the column is empty', () => {
  for (const row of [
    { q: 'Name a colour.', ctx: '', a: 'Red', sys: '' },
    { q: 'Name a colour.', a: 'Red' },
  ]) {
    const e = sft('InstructTextTask', INSTRUCT, row);
    assert.equal(text(e), '### Instruction:\nName a colour.\n### Response:\nRed');
    assert.equal(trained(e), 'Red');
  }
});

test('instruct: G.O.D defaults — format "{instruction} {input}", system_prompt only without field_system', () => {
  const t = {
    field_instruction: 'q',
    field_input: 'ctx',
    field_output: 'a',
    system_prompt: 'SYS',
    system_format: '<{system}>',
  };
  assert.equal(text(sft('InstructTextTask', t, { q: 'Q', ctx: 'C', a: 'A' })), '<SYS>Q CA');
  assert.equal(text(sft('InstructTextTask', t, { q: 'Q', a: 'A' })), '<SYS>QA');
  // With field_system set, a row without that column gets no system text (axolotl ignores system_prompt then).
  assert.equal(text(sft('InstructTextTask', { ...t, field_system: 's' }, { q: 'Q', a: 'A' })), 'QA');
  // Literal braces as Python writes them.
  assert.equal(pyFormat('{{json}} {instruction}', { instruction: 'x' }, 'format'), '{json} x');
});

test("format strings fill as Python's str.format fills them (axolotl calls it)", () => {
  const templates = [
    '{instruction} {input}',
    '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n',
    '{{"q": "{instruction}"}} {input}{input}',
    '}}{{{instruction}}}{{',
    'no fields',
    '{inptu}',
    '{instruction',
    'a } b',
  ];
  const values = { instruction: 'Add {x} and "y"', input: 'ünï\ncode' };
  const reference = JSON.parse(
    python(
      'import json, sys\nts, v = json.loads(sys.argv[1]), json.loads(sys.argv[2])\nout = []\n' +
        'for t in ts:\n    try:\n        out.append(t.format(**v))\n    except (KeyError, ValueError):\n        out.append(None)\n' +
        'print(json.dumps(out))',
      [JSON.stringify(templates), JSON.stringify(values)],
    ),
  ) as (string | null)[];
  templates.forEach((t, i) => {
    if (reference[i] === null) assert.throws(() => pyFormat(t, values, 'format'), FormatError, t);
    else assert.equal(pyFormat(t, values, 'format'), reference[i], t);
  });
  assert.ok(reference.filter((r) => r === null).length >= 3, 'the error cases are errors in Python too');
});

test('instruct: no field_output is a completion, trained whole', () => {
  const e = sft('InstructTextTask', { field_instruction: 'text' }, { text: 'Once upon a time.' });
  assert.deepEqual(e.parts, [{ text: 'Once upon a time.', train: true }]);
});

test('instruct: errors name the column, the field and the row; unknown placeholders name the format', () => {
  assert.throws(
    () => sft('InstructTextTask', INSTRUCT, { q: 'x' }, 7),
    (e: Error) => e instanceof FormatError && /row 7: column 'a' \(field_output\) is missing/.test(e.message),
  );
  assert.throws(
    () => sft('InstructTextTask', { ...INSTRUCT, no_input_format: '{instruction} {inptu}' }, { q: 'x', a: 'y' }, 3),
    /row 3: dataset_type.no_input_format '\{instruction\} \{inptu\}' uses \{inptu\}; it may use \{instruction\}/,
  );
  assert.throws(
    () => rowFormatter('InstructTextTask', { field_instruction: 5 }),
    /dataset_type for InstructTextTask is invalid/,
  );
});

test('DPO: formats filled by replacement, then wrapped as axolotl chatml; system block only when non-empty', () => {
  const f = rowFormatter('DpoTask', {
    field_prompt: 'p',
    field_system: 's',
    field_chosen: 'c',
    field_rejected: 'r',
    prompt_format: 'Q: {prompt}',
    chosen_format: '{chosen} (to "{prompt}")',
    rejected_format: '{rejected}',
  });
  assert.equal(f.kind, 'preference');
  assert.deepEqual(f.format({ p: 'Sky?', s: 'Be kind.', c: 'Blue', r: 'Green' }, 1), {
    prompt: '<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nQ: Sky?<|im_end|>\n<|im_start|>assistant\n',
    chosen: 'Blue (to "Q: Sky?")<|im_end|>',
    rejected: 'Green<|im_end|>',
  });
  assert.deepEqual(
    f.format({ p: 'Sky?', s: '', c: 'Blue', r: 'Green' }, 2).prompt.startsWith('<|im_start|>user\n'),
    true,
  );
  assert.throws(() => f.format({ p: 'Sky?', c: 'Blue' }, 9), /row 9: column 'r' \(field_rejected\) is missing/);
});

const CHAT = {
  chat_template: 'chatml',
  chat_column: 'conversations',
  chat_role_field: 'from',
  chat_content_field: 'value',
  chat_user_reference: 'human',
  chat_assistant_reference: 'gpt',
};
const CONVERSATION = [
  { from: 'system', value: 'You are brief.' },
  { from: 'human', value: 'Hello!' },
  { from: 'gpt', value: ' Hi, how can I help? ' },
  { from: 'human', value: 'Say "bye".' },
  { from: 'gpt', value: 'Bye.' },
];

test('chat (chatml): only assistant content and its <|im_end|> are trained; roles mapped from the references', () => {
  const e = sft('ChatTask', CHAT, { conversations: CONVERSATION });
  assert.deepEqual(
    e.parts.filter((p) => p.train).map((p) => p.text),
    [' Hi, how can I help? <|im_end|>', 'Bye.<|im_end|>'],
  );
  assert.equal(
    text(e),
    '<|im_start|>system\nYou are brief.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n' +
      ' Hi, how can I help? <|im_end|>\n<|im_start|>user\nSay "bye".<|im_end|>\n<|im_start|>assistant\nBye.<|im_end|>\n',
  );
  // A CSV cell holds the list as JSON text.
  assert.deepEqual(sft('ChatTask', CHAT, { conversations: JSON.stringify(CONVERSATION) }), e);
});

test('chat: errors name the row, the message and the field', () => {
  assert.throws(
    () => sft('ChatTask', CHAT, { messages: [] }, 4),
    /row 4: column 'conversations' \(chat_column\) is missing/,
  );
  assert.throws(
    () => sft('ChatTask', CHAT, { conversations: [{ from: 'bot', value: 'x' }] }, 5),
    /row 5, conversations\[0\]: role 'bot' is neither chat_user_reference 'human' nor chat_assistant_reference 'gpt'/,
  );
  assert.throws(
    () => sft('ChatTask', CHAT, { conversations: [{ from: 'human' }] }, 6),
    /row 6, conversations\[0\]: 'value' \(chat_content_field\) is missing/,
  );
  assert.throws(
    () => rowFormatter('ChatTask', { ...CHAT, chat_template: 'vicuna9' }),
    /neither a known template \(chatml, llama3\)/,
  );
});

// A template given as Jinja text (Zephyr's shape), with whitespace control and an eos_token.
const ZEPHYR =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

test('chat templates render as Python jinja2 renders them (transformers settings), prefix by prefix', () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'You are brief.' },
    { role: 'user', content: 'Hello!' },
    { role: 'assistant', content: ' Hi, how can I help? ' },
    { role: 'user', content: 'Say "bye".\nNow.' },
    { role: 'assistant', content: 'Bye.' },
  ];
  const cases: { name: string; source: string; bos: string; eos: string }[] = [
    ...Object.values(CHAT_TEMPLATES).map((t) => ({ name: t.name, source: t.source, bos: t.bosToken, eos: t.eosToken })),
    { name: 'zephyr', source: ZEPHYR, bos: '', eos: '</s>' },
  ];
  const inputs = cases.flatMap((c) =>
    [0, 1, 2, 3, 4, 5].flatMap((n) =>
      [false, true].map((gen) => ({
        template: c.source,
        messages: messages.slice(0, n),
        bos_token: c.bos,
        eos_token: c.eos,
        add_generation_prompt: gen,
      })),
    ),
  );
  const reference = JSON.parse(pythonScript('venv', 'chat_template_render.py', [], JSON.stringify(inputs))) as string[];
  const ours = inputs.map((i) => new Template(i.template).render({ ...i }));
  for (let k = 0; k < inputs.length; k++)
    assert.equal(ours[k], reference[k], `${cases[Math.floor(k / 12)].name}, ${inputs[k].messages.length} messages`);

  // The split examples put the same text back together, training exactly the assistant turns.
  for (const c of cases) {
    const template = c.name === 'zephyr' ? { ...chatTemplateFor(ZEPHYR), eosToken: '</s>' } : CHAT_TEMPLATES[c.name];
    const e = renderChat(new Template(c.source), template, messages);
    const full = reference[cases.indexOf(c) * 12 + 10]; // all five messages, no generation prompt
    assert.equal(text(e), full, c.name);
    const content = (s: string) => (c.name === 'llama3' ? s.trim() : s);
    const eot = c.name === 'zephyr' ? '</s>' : template.endOfTurn!;
    assert.deepEqual(
      e.parts.filter((p) => p.train).map((p) => p.text),
      [content(' Hi, how can I help? ') + eot, 'Bye.' + eot],
      c.name,
    );
  }
});

test('offline data: each task formats with its own dataset_type, every row usable', () => {
  for (const task of ['instruct', 'chat', 'dpo'] as const) {
    const d = offlineJobData(task, 30);
    assert.equal(d.rows.length, 30);
    assert.deepEqual(offlineJobData(task, 30), d, 'deterministic');
    const f = rowFormatter(d.taskType, d.datasetType);
    const examples = d.rows.map((r, i) => f.format(r, i + 1));
    if (task === 'dpo') {
      for (const e of examples as { chosen: string; rejected: string }[]) assert.notEqual(e.chosen, e.rejected);
    } else {
      for (const e of examples as SftExample[]) assert.ok(trained(e).trim().length > 0, 'trained(e).trim().length > 0');
    }
  }
  // Every fourth instruct row has no input: no_input_format is exercised.
  const instruct = offlineJobData('instruct', 4);
  assert.equal(instruct.rows[3].input, '');
});
