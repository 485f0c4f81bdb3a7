// Runs the PyTorch reference (bench/python/gpt_reference.py) in the venv that sees Debian's torch.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { projectRoot } from '../infra/paths';

export function torchReference(args: string[]): unknown {
  execFileSync('bash', [path.join(projectRoot(), 'scripts', 'setup-torch.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const py = path.join(projectRoot(), '.tools', 'venv-torch', 'bin', 'python');
  return JSON.parse(
    execFileSync(py, [path.join(__dirname, 'python', 'gpt_reference.py'), ...args], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    }),
  );
}
