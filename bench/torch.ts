// Runs the PyTorch reference (bench/python/gpt_reference.py) in the venv that sees Debian's torch.
// The Python side names the BLAS torch really runs on and refuses the netlib reference BLAS
// (bench/python/blas_check.py): a reference no PyTorch user would run flatters us.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { projectRoot } from '../infra/paths';
import { note } from './report';

/** The venv's python, after scripts/setup-torch.sh (quick when it is already there): a bench run alone on a fresh clone has none yet. */
export function torchPython(): string {
  execFileSync('bash', [path.join(projectRoot(), 'scripts', 'setup-torch.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return path.join(projectRoot(), '.tools', 'venv-torch', 'bin', 'python');
}

export function torchReference(args: string[]): unknown {
  const py = torchPython();
  const out = JSON.parse(
    execFileSync(py, [path.join(__dirname, 'python', 'gpt_reference.py'), ...args], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    }),
  ) as { blas?: string };
  note(`reference BLAS: ${out.blas}`);
  return out;
}
