"""Renders chat templates with Python's jinja2 configured as transformers' apply_chat_template
configures it (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception), the reference our @huggingface/jinja rendering is compared with.

stdin: JSON list of {template, messages, bos_token, eos_token, add_generation_prompt};
stdout: JSON list of rendered strings."""
import json
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.globals["raise_exception"] = raise_exception
out = []
for case in json.load(sys.stdin):
    template = env.from_string(case.pop("template"))
    out.append(template.render(**case))
print(json.dumps(out))
