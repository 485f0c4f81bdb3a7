// What every command shares: the argument parser (node:util parseArgs, strict), flag validation,
// and reading a cycle config file. A problem with what was typed is a UsageError (exit code 2).
import { promises as fs } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvalidInputError, parseOrExplain } from '../common/config';
import { CycleInputSchema, type CycleInput } from '../subnets/connito/config';

/** What was typed is wrong: exit code 2, with the usage text unless the problem is a config file's. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly showUsage = true,
  ) {
    super(message);
  }
}

export type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `args` for `command` (e.g. 'cycle extend') against `options`, allowing `min`..`max`
 * positionals. Unknown flags, flags without their value and extra arguments are UsageErrors
 * naming the flag and what followed it.
 */
export function parseCommand(
  command: string,
  args: string[],
  options: OptionSpec,
  positionals: { min?: number; max?: number; names?: string } = {},
): Parsed {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, options),
      options,
      strict: true,
      allowPositionals: true,
    }) as Parsed;
  } catch (err) {
    throw new UsageError(`${command}: ${explainParseError(err, args, options)}`);
  }
  const { min = 0, max = 0, names = 'arguments' } = positionals;
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`${command} needs ${names}`);
  if (n > max)
    throw new UsageError(
      `${command}: unexpected argument '${parsed.positionals[max]}'${max === 0 ? ' (it takes flags only)' : ''}`,
    );
  return parsed;
}

/** `--steps -3`: parseArgs would read -3 as a flag; take it as the value, so validation can name it. */
function joinNegativeValues(args: string[], options: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = args[i + 1];
    if (
      a.startsWith('--') &&
      !a.includes('=') &&
      options[a.slice(2)]?.type === 'string' &&
      next !== undefined &&
      /^-[\d.]/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function explainParseError(err: unknown, args: string[], options: OptionSpec): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
    for (const t of tokens) {
      if (t.kind !== 'option' || t.name in options) continue;
      const next = tokens.find((x) => x.index === t.index + 1);
      const value = t.value ?? (next?.kind === 'positional' ? next.value : undefined);
      const known =
        Object.keys(options)
          .map((k) => `--${k}`)
          .join(', ') || 'none';
      return `unknown flag ${t.rawName}${value !== undefined ? ` (with value '${value}')` : ''}; known flags: ${known}`;
    }
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const m = /'(--?[\w-]+)/.exec(message);
    const flag = m?.[1];
    const name = flag?.replace(/^--?/, '');
    if (name && options[name]?.type === 'boolean') return `${flag} takes no value`;
    if (flag) return `${flag} needs a value`;
  }
  return message;
}

export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** An integer flag in [min, max], or undefined when absent. */
export function intFlag(flag: string, raw: string | boolean | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  const n = /^[+-]?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`--${flag} '${text}': must be an integer from ${min} to ${max}`);
  return n;
}

/** A number flag in (min, max] (or [min, max] when `inclusiveMin`), or undefined when absent. */
export function numberFlag(
  flag: string,
  raw: string | boolean | undefined,
  min: number,
  max: number,
  inclusiveMin = false,
): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  const n = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text.trim()) ? Number(text) : NaN;
  const aboveMin = inclusiveMin ? n >= min : n > min;
  if (!Number.isFinite(n) || !aboveMin || n > max)
    throw new UsageError(`--${flag} '${text}': must be a number ${inclusiveMin ? '≥' : '>'} ${min} and ≤ ${max}`);
  return n;
}

/** A string flag that must not be empty when given. */
export function stringFlag(flag: string, raw: string | boolean | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !raw.trim()) throw new UsageError(`--${flag} needs a non-empty value`);
  return raw;
}

/** The cycle config JSON in `file` (`{}`, the embedded demo, without one), not yet validated. */
export async function readConfigFile(file: string | undefined): Promise<unknown> {
  if (file === undefined) return {};
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `config file ${file}: ${code === 'ENOENT' ? 'not found' : code === 'EISDIR' ? 'is a folder' : (err as Error).message}`,
      false,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `config file ${file}: not valid JSON: ${(err as Error).message}${jsonPosition(text, (err as Error).message)}`,
      false,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(
      `config file ${file}: the config must be a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`,
      false,
    );
  }
  return value;
}

/** " (line L, column C)" for a JSON.parse message that gives a position only. */
function jsonPosition(text: string, message: string): string {
  if (/line \d+/.test(message)) return '';
  const m = /position (\d+)/.exec(message);
  const pos = m ? Number(m[1]) : /end of JSON input/.test(message) ? text.length : undefined;
  if (pos === undefined) return '';
  const before = text.slice(0, pos).split('\n');
  return ` (line ${before.length}, column ${before.at(-1)!.length + 1})`;
}

/** The validated cycle config from `--config FILE` (or `{}`), with the raw JSON to hand to the workflow. */
export async function loadCycleConfig(file: string | undefined): Promise<{ raw: unknown; cycle: CycleInput }> {
  const raw = await readConfigFile(file);
  try {
    return { raw, cycle: parseOrExplain(CycleInputSchema, raw, `cycle config${file ? ` ${file}` : ''}`) };
  } catch (err) {
    if (err instanceof InvalidInputError) throw new UsageError(err.message, false);
    throw err;
  }
}
