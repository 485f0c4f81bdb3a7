// Chat templates by the names a Gradients ChatTask may give (`dataset_type.chat_template`). G.O.D
// (3ee725a, core/config/config_handler.py) passes the name straight to axolotl's `chat_template`,
// so these are axolotl's templates of that name (src/axolotl/utils/chat_templates: chatml as it
// has always been; llama3 at 1377ccc). A value that is not a name is taken as a Jinja template.

export interface ChatTemplate {
  name: string;
  source: string;
  bosToken: string;
  eosToken: string;
  /** The token the template closes each turn with: trained together with an assistant's content. */
  endOfTurn?: string;
}

const CHATML =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const LLAMA3 =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set loop_messages = messages %}{% for message in loop_messages %}{% if message['content'] is string %}{% set message_text = message['content'] | trim %}{% else %}{% set message_text = message['content'] | selectattr('text', 'defined') | map(attribute='text') | join('') | trim %}{% endif %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message_text + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

export const CHAT_TEMPLATES: Record<string, ChatTemplate> = {
  chatml: { name: 'chatml', source: CHATML, bosToken: '', eosToken: '<|im_end|>', endOfTurn: '<|im_end|>' },
  llama3: {
    name: 'llama3',
    source: LLAMA3,
    bosToken: '<|begin_of_text|>',
    eosToken: '<|eot_id|>',
    endOfTurn: '<|eot_id|>',
  },
};

// End-of-turn tokens of common templates, looked for when the template is given as Jinja text.
const KNOWN_END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '</s>'];

/** The template a dataset_type names, or its Jinja text; errors list the names known. */
export function chatTemplateFor(nameOrJinja: string): ChatTemplate {
  const named = CHAT_TEMPLATES[nameOrJinja];
  if (named) return named;
  if (nameOrJinja.includes('{%') || nameOrJinja.includes('{{')) {
    return {
      name: 'jinja',
      source: nameOrJinja,
      bosToken: '',
      eosToken: '',
      endOfTurn: KNOWN_END_OF_TURN.find((t) => nameOrJinja.includes(t)),
    };
  }
  throw new Error(
    `dataset_type.chat_template '${nameOrJinja}' is neither a known template (${Object.keys(CHAT_TEMPLATES).join(', ')}) nor Jinja text`,
  );
}
