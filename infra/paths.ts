import * as fs from 'node:fs';
import * as path from 'node:path';

/** The minerflow checkout (or install) this code runs from, whether as .ts sources or compiled dist/. */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'minerflow')
      return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find minerflow's package.json above ${__dirname}`);
    dir = up;
  }
}
