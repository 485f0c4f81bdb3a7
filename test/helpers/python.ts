// Runs Python peers (safetensors, numpy, hashlib) from the venv that scripts/setup-python.sh makes.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../infra/paths';

export function python(script: string, args: string[] = []): string {
  const py = path.join(projectRoot(), '.tools', 'venv', 'bin', 'python');
  if (!existsSync(py))
    throw new Error(`${py} is missing: run \`npm test\` (its setup creates it) or \`bash scripts/setup-python.sh\``);
  return execFileSync(py, ['-c', script, ...args], { encoding: 'utf8' });
}

/**
 * Runs test/python/<name> with the same venv, without blocking this process: the script may call
 * servers that live in it (the devnet, the local hub).
 */
export async function pythonScriptAsync(
  name: string,
  args: string[] = [],
  venv: 'venv' | 'venv-torch' = 'venv',
): Promise<string> {
  const py = path.join(projectRoot(), '.tools', venv, 'bin', 'python');
  if (!existsSync(py))
    throw new Error(`${py} is missing: run \`npm test\` (its setup creates it) or \`bash scripts/setup-python.sh\``);
  const script = path.join(projectRoot(), 'test', 'python', name);
  const { stdout } = await promisify(execFile)(py, [script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return stdout;
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
