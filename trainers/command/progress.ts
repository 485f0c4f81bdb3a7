// Progress of an external trainer, from whichever it offers: minerflow's JSON-lines protocol on
// stdout, regular expressions over its log lines, or its Prometheus text exposition. Pure: lines
// and texts in, reports out; the supervisor (run.ts) feeds them and heartbeats the result.

/** One observation; any field may be missing (a log line carries the loss, the next the LR). */
export interface ProgressUpdate {
  step?: number; // optimizer steps completed
  loss?: number;
  lr?: number;
  tokensPerSec?: number;
  auxLoss?: number;
  gradNorm?: number;
}

/** A checkpoint the trainer announced (JSON-lines protocol); discovery finds it on disk too. */
export interface CheckpointAnnouncement {
  step: number;
  path: string;
}

export type ProtocolMessage =
  | { type: 'progress'; update: ProgressUpdate }
  | { type: 'checkpoint'; checkpoint: CheckpointAnnouncement }
  | { type: 'invalid'; problem: string }
  | { type: 'none' }; // not a protocol line: an ordinary log line

const NUMBER_FIELDS = ['step', 'loss', 'lr', 'tokensPerSec', 'auxLoss', 'gradNorm'] as const;

/**
 * minerflow's JSON-lines protocol (README, "Any trainer"): one JSON object a line on stdout with
 * "minerflow": 1 and a "type":
 *   {"minerflow":1,"type":"progress","step":120,"loss":3.21,"lr":0.002,"tokensPerSec":5400}
 *   {"minerflow":1,"type":"checkpoint","step":120,"path":"/…/globalver_0_inneropt_120"}
 * progress: step (completed optimizer steps, integer ≥ 0) and loss are required; lr, tokensPerSec,
 * auxLoss, gradNorm optional; a non-finite number is sent as null (or as the bare NaN / Infinity
 * that Python's json.dumps writes by default). Every other line is a log line.
 */
export function parseProtocolLine(line: string): ProtocolMessage {
  const text = line.trim();
  if (!text.startsWith('{') || !text.includes('"minerflow"')) return { type: 'none' };
  let msg: Record<string, unknown>;
  try {
    msg = parseTrainerJson(text) as Record<string, unknown>;
  } catch (err) {
    return { type: 'invalid', problem: `not JSON (${(err as Error).message}): ${text.slice(0, 200)}` };
  }
  if (msg === null || typeof msg !== 'object' || msg.minerflow !== 1)
    return { type: 'invalid', problem: `minerflow = ${JSON.stringify(msg?.minerflow)}: expected 1` };
  const step = msg.step;
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0)
    return { type: 'invalid', problem: `${String(msg.type)}.step = ${JSON.stringify(step)}: expected an integer ≥ 0` };
  if (msg.type === 'checkpoint') {
    if (typeof msg.path !== 'string' || !msg.path)
      return { type: 'invalid', problem: `checkpoint.path = ${JSON.stringify(msg.path)}: expected a folder path` };
    return { type: 'checkpoint', checkpoint: { step, path: msg.path } };
  }
  if (msg.type !== 'progress')
    return { type: 'invalid', problem: `type = ${JSON.stringify(msg.type)}: expected "progress" or "checkpoint"` };
  const update: ProgressUpdate = {};
  for (const field of NUMBER_FIELDS) {
    const v = msg[field];
    if (v === undefined) continue;
    if (v === null) update[field] = NaN;
    else if (typeof v === 'number') update[field] = v;
    else return { type: 'invalid', problem: `progress.${field} = ${JSON.stringify(v)}: expected a number` };
  }
  if (update.loss === undefined) return { type: 'invalid', problem: 'progress.loss = missing: expected a number' };
  return { type: 'progress', update };
}

/**
 * JSON as a trainer writes it: strict, or with the bare NaN / Infinity / -Infinity that Python's
 * json.dumps writes by default read as null. A diverging step or a blown-up checkpoint is exactly
 * when a trainer writes them, and exactly when minerflow must see them as non-finite. Throws the
 * strict parser's error when neither reading works.
 */
export function parseTrainerJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const nonFiniteAsNull = text.replace(/"(?:[^"\\]|\\.)*"|-?\b(?:NaN|Infinity)\b/g, (m) =>
      m.startsWith('"') ? m : 'null',
    );
    if (nonFiniteAsNull === text) throw err;
    try {
      return JSON.parse(nonFiniteAsNull);
    } catch {
      throw err;
    }
  }
}

// eslint-disable-next-line no-control-regex -- ANSI escape sequences are control characters by definition
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;

export function stripAnsi(line: string): string {
  return line.replace(ANSI, '');
}

/**
 * Log lines → updates. Each pattern's named groups fill the fields of the same name; `stepIndex`
 * is a 0-based index of the step in progress (Connito's inner_opt_step), reported as stepIndex + 1.
 */
export function makeLogParser(patterns: string[]): (line: string) => ProgressUpdate | undefined {
  const regexes = patterns.map((p) => {
    try {
      return new RegExp(p);
    } catch (err) {
      throw new Error(
        `trainer.progress.patterns: ${JSON.stringify(p)} is not a regular expression: ${(err as Error).message}`,
        { cause: err },
      );
    }
  });
  return (line) => {
    const plain = stripAnsi(line);
    let update: ProgressUpdate | undefined;
    for (const re of regexes) {
      const groups = re.exec(plain)?.groups;
      if (!groups) continue;
      update ??= {};
      for (const [name, raw] of Object.entries(groups)) {
        if (raw === undefined) continue;
        const v = Number(raw);
        if (name === 'stepIndex') update.step = v + 1;
        else if ((NUMBER_FIELDS as readonly string[]).includes(name)) update[name as keyof ProgressUpdate] = v;
      }
    }
    return update;
  };
}

/** First sample of each metric in a Prometheus text exposition (labels ignored), by name. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || out.has(m[1])) continue;
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.set(m[1], v);
  }
  return out;
}

const RATE_WINDOW = 20; // steps

/** Running totals: merges updates, counts steps when the source has none, and measures tokens/s when it does not say. */
export class ProgressTracker {
  step: number;
  loss = NaN;
  lr = NaN;
  auxLoss = 0;
  gradNorm = NaN;
  tokensPerSec = 0;
  updates = 0;
  lastUpdateAt: number;
  // When the step moved, the last RATE_WINDOW times: tokens/s is the recent speed, so the process
  // start and the trainer's own setup stop counting once the window has slid past them.
  private stepTimes: { step: number; at: number }[];

  constructor(
    readonly startStep: number,
    private readonly tokensPerStep: number,
    now: number,
  ) {
    this.step = startStep;
    this.lastUpdateAt = now;
    this.stepTimes = [{ step: startStep, at: now }];
  }

  apply(u: ProgressUpdate, now: number): void {
    this.updates++;
    this.lastUpdateAt = now;
    if (u.loss !== undefined) this.loss = u.loss;
    if (u.lr !== undefined) this.lr = u.lr;
    if (u.auxLoss !== undefined) this.auxLoss = u.auxLoss;
    if (u.gradNorm !== undefined) this.gradNorm = u.gradNorm;
    if (u.step !== undefined && u.step > this.step) {
      this.step = u.step;
      this.stepTimes.push({ step: u.step, at: now });
      if (this.stepTimes.length > RATE_WINDOW + 1) this.stepTimes.shift();
      const from = this.stepTimes[0];
      if (u.tokensPerSec === undefined && now > from.at)
        this.tokensPerSec = ((this.step - from.step) * this.tokensPerStep * 1000) / (now - from.at);
    }
    if (u.tokensPerSec !== undefined) this.tokensPerSec = u.tokensPerSec;
  }
}
