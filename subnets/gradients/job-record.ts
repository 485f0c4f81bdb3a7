// The record of past jobs: one JSON line per outcome, appended to a file under the data folder.
// Appends of one short line with O_APPEND are whole, and a line torn by a crash is skipped when
// read, so the record survives restarts. Several processes may append (the service records offers,
// the job workflows' activities record finishes): stats() reads whatever was appended since last time.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { JobKind, JobKindStats, JobOutcome, JobRecord } from './ports';
import { TaskTypeSchema } from './protocol';

const OutcomeSchema = z.object({
  taskId: z.string(),
  family: z.string(),
  sizeBucket: z.string(),
  taskType: TaskTypeSchema,
  event: z.enum(['offered', 'accepted', 'declined', 'finished', 'late', 'failed']),
  tokensPerSec: z.number().optional(),
  finalLoss: z.number().optional(),
  seconds: z.number().optional(),
});

const keyOf = (k: JobKind) => `${k.family}\0${k.sizeBucket}\0${k.taskType}`;

interface Totals {
  offered: number;
  accepted: number;
  finished: number;
  late: number;
  failed: number;
  tokensPerSec: number[];
  finalLoss: number[];
}

export class FileJobRecord implements JobRecord {
  private readonly totals = new Map<string, Totals>();
  private offset = 0;
  private pending = '';
  /** Lines that could not be read (a torn last line, hand edits). */
  skipped = 0;

  constructor(readonly file: string) {}

  /** The record in `dataDir`/gradients/jobs.jsonl. */
  static inDataDir(dataDir: string): FileJobRecord {
    return new FileJobRecord(path.join(dataDir, 'gradients', 'jobs.jsonl'));
  }

  async add(outcome: JobOutcome): Promise<void> {
    const line = JSON.stringify(OutcomeSchema.parse(outcome)) + '\n';
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    const handle = await fs.open(this.file, 'a+');
    try {
      // A line torn by a crash is closed first, so it does not swallow this one.
      const { size } = await handle.stat();
      const last = Buffer.alloc(1);
      if (size > 0) await handle.read(last, 0, 1, size - 1);
      await handle.write(size > 0 && last[0] !== 0x0a ? '\n' + line : line);
    } finally {
      await handle.close();
    }
  }

  async stats(kind: JobKind): Promise<JobKindStats> {
    await this.catchUp();
    const t = this.totals.get(keyOf(kind));
    const mean = (xs: number[] | undefined) => (xs && xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
    return {
      offered: t?.offered ?? 0,
      accepted: t?.accepted ?? 0,
      finished: t?.finished ?? 0,
      late: t?.late ?? 0,
      failed: t?.failed ?? 0,
      tokensPerSec: mean(t?.tokensPerSec),
      finalLoss: mean(t?.finalLoss),
    };
  }

  /** Reads what was appended since the last read. */
  private async catchUp(): Promise<void> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (size <= this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      await handle.read(buf, 0, buf.length, this.offset);
      this.offset = size;
      const text = this.pending + buf.toString('utf8');
      const lines = text.split('\n');
      this.pending = lines.pop() ?? ''; // an unfinished line: completed by a later append, or torn
      for (const line of lines) this.count(line);
    } finally {
      await handle.close();
    }
  }

  private count(line: string): void {
    if (!line.trim()) return;
    let o: JobOutcome;
    try {
      o = OutcomeSchema.parse(JSON.parse(line));
    } catch {
      this.skipped++;
      return;
    }
    const key = keyOf(o);
    let t = this.totals.get(key);
    if (!t) {
      t = { offered: 0, accepted: 0, finished: 0, late: 0, failed: 0, tokensPerSec: [], finalLoss: [] };
      this.totals.set(key, t);
    }
    // The service records each offer once, as 'accepted' or 'declined'; 'offered' is an offer with no decision recorded.
    if (o.event === 'offered' || o.event === 'accepted' || o.event === 'declined') t.offered++;
    if (o.event !== 'offered' && o.event !== 'declined') t[o.event]++;
    if (o.event === 'finished') {
      if (o.tokensPerSec !== undefined) t.tokensPerSec.push(o.tokensPerSec);
      if (o.finalLoss !== undefined) t.finalLoss.push(o.finalLoss);
    }
  }
}
