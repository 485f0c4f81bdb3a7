// Checkpoints an external trainer writes into its output folder, found by name (Connito's layout
// by default: globalver_{v}_inneropt_{n}/, written as .tmp_<name> and renamed, so a folder with the
// name is complete). Which one is published is the training loop's choice: the best segment state.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export interface FoundCheckpoint {
  name: string; // the folder's name, e.g. globalver_0_inneropt_120
  dir: string;
  version: number; // Connito's global_ver (0 when the pattern has no `version` group)
  step: number;
}

/** Complete checkpoints in `dir`, in training order (version, then step); hidden and temp folders skipped. */
export async function discoverCheckpoints(dir: string, pattern: string): Promise<FoundCheckpoint[]> {
  const re = new RegExp(pattern);
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const found: FoundCheckpoint[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const g = re.exec(e.name)?.groups;
    if (!g?.step) continue;
    found.push({ name: e.name, dir: path.join(dir, e.name), version: Number(g.version ?? 0), step: Number(g.step) });
  }
  return found.sort((a, b) => a.version - b.version || a.step - b.step);
}
