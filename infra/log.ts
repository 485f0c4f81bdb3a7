// One structured logger (pino, JSON lines) for workers, domain code and the CLI. Secret-bearing
// fields are redacted wherever they appear; wallet and hotkey *names* are not secrets and stay.
// MINERFLOW_LOG_LEVEL sets the level (debug, info, warn, error; default info); pipe through
// `npx pino-pretty` to read it as text.
import pino from 'pino';

export type Logger = pino.Logger;

/** Field names whose values never reach a log, at any depth we log at. */
export const REDACTED_FIELDS = [
  'secretPhrase',
  'secretSeed',
  'privateKey',
  'mnemonic',
  'password',
  'token',
  'apiKey',
  'authorization',
  'Authorization', // as HTTP headers spell it (pino's paths are case-sensitive)
  'accessToken', // as @huggingface/hub's options spell the HF token
  'HF_TOKEN',
  'AWS_SECRET_ACCESS_KEY',
  'TEMPORAL_API_KEY',
];

function redactPaths(): string[] {
  return REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);
}

/** A logger writing to `destination` (stderr by default, so stdout stays for command output). */
export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.MINERFLOW_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      redact: { paths: redactPaths(), censor: '(redacted)' },
    },
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** The process's logger; modules take a child of it (`logger.child({ module: 'devnet' })`). */
export const logger: Logger = createLogger();
