// The PyTorch side of every benchmark names its BLAS and refuses the netlib reference BLAS
// (bench/python/blas_check.py). The refusal is checked for real: in a private mount namespace the
// libblas.so.3 alternative points at Debian's reference libblas3, as after a bare
// `apt-get install python3-torch`; nothing outside this test's process sees the change.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readlinkSync, rmSync, cpSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../infra/paths';

const py = path.join(projectRoot(), '.tools', 'venv-torch', 'bin', 'python');
const script = path.join(projectRoot(), 'bench', 'python', 'blas_check.py');
const ALTERNATIVE = '/etc/alternatives/libblas.so.3-x86_64-linux-gnu';
const NETLIB = '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3';

test('the reference names OpenBLAS, the BLAS scripts/setup-torch.sh installs', () => {
  assert.ok(existsSync(py), `${py} is missing: run bash scripts/setup-torch.sh`);
  const out = execFileSync(py, [script], { encoding: 'utf8' });
  assert.match(out, /OpenBLAS \d+\.\d+\.\d+ \(\d+ threads\) via \S*openblas\S*libblas\.so\.3/);
});

test(
  'on the netlib reference BLAS the reference refuses to run and says how to fix it',
  {
    skip:
      process.getuid?.() !== 0 || !existsSync(NETLIB) || !existsSync(ALTERNATIVE)
        ? 'needs root (a private mount namespace) and Debian libblas3 installed beside OpenBLAS'
        : false,
  },
  () => {
    const alternatives = mkdtempSync(path.join(os.tmpdir(), 'alternatives-'));
    try {
      cpSync('/etc/alternatives', alternatives, { recursive: true, verbatimSymlinks: true });
      rmSync(path.join(alternatives, path.basename(ALTERNATIVE)));
      symlinkSync(NETLIB, path.join(alternatives, path.basename(ALTERNATIVE)));
      assert.equal(readlinkSync(path.join(alternatives, path.basename(ALTERNATIVE))), NETLIB);
      const run = spawnSync(
        'unshare',
        ['-m', 'sh', '-c', `mount --bind "$0" /etc/alternatives && exec "$1" "$2"`, alternatives, py, script],
        { encoding: 'utf8' },
      );
      assert.equal(run.status, 3, `exit status (stderr: ${run.stderr})`);
      assert.match(run.stderr, /refusing to benchmark: PyTorch is running on the netlib reference BLAS/);
      assert.match(run.stderr, /libblas\.so\.3 is \/usr\/lib\/x86_64-linux-gnu\/blas\/libblas\.so\.3/);
      assert.match(run.stderr, /apt-get install libopenblas0-pthread/);
    } finally {
      rmSync(alternatives, { recursive: true, force: true });
    }
  },
);
