// Reading what a worker's /metrics endpoint serves (Prometheus text format 0.0.4), and finding the
// endpoints from the file_sd targets the workers write.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of the exposition text (comments and blank lines skipped). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return parseExposition(await res.text());
}

/** The value of `name` whose labels include `labels`, or undefined. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** worker name → /metrics URL, from the file_sd target files under <dataDir>/metrics/targets. */
export async function metricsTargets(dataDir: string): Promise<Record<string, string>> {
  const dir = path.join(dataDir, 'metrics', 'targets');
  const files = await fs.readdir(dir).catch(() => [] as string[]);
  const out: Record<string, string> = {};
  for (const f of files.filter((x) => x.endsWith('.json'))) {
    const groups = JSON.parse(await fs.readFile(path.join(dir, f), 'utf8')) as {
      targets: string[];
      labels: { worker: string };
    }[];
    for (const g of groups) out[g.labels.worker] = `http://${g.targets[0]}/metrics`;
  }
  return out;
}
