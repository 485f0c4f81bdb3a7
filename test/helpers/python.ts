// Runs Python peers (safetensors, numpy, hashlib) from the venv that scripts/setup-python.sh makes.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../../infra/paths';

export function python(script: string, args: string[] = []): string {
  const py = path.join(projectRoot(), '.tools', 'venv', 'bin', 'python');
  if (!existsSync(py))
    throw new Error(`${py} is missing: run \`npm test\` (its setup creates it) or \`bash scripts/setup-python.sh\``);
  return execFileSync(py, ['-c', script, ...args], { encoding: 'utf8' });
}

/** Runs a script from test/python with one of the project's venvs (.tools/venv, or .tools/venv-torch for torch). */
export function pythonScript(venv: 'venv' | 'venv-torch', script: string, args: string[] = [], input?: string): string {
  const py = path.join(projectRoot(), '.tools', venv, 'bin', 'python');
  if (!existsSync(py))
    throw new Error(
      `${py} is missing: run \`npm test\` (its setup creates it) or \`bash scripts/${venv === 'venv' ? 'setup-python' : 'setup-torch'}.sh\``,
    );
  return execFileSync(py, [path.join(projectRoot(), 'test', 'python', script), ...args], {
    encoding: 'utf8',
    input,
    maxBuffer: 64 << 20,
  });
}
