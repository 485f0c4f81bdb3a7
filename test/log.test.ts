// The one logger: secret-bearing fields never reach a log line, at the top level or nested; the
// names of wallets and hotkeys (not secrets) do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, REDACTED_FIELDS } from '../infra/log';

function captured(): {
  lines: () => Record<string, unknown>[];
  text: () => string;
  destination: { write(s: string): void };
} {
  const chunks: string[] = [];
  return {
    destination: { write: (s: string) => void chunks.push(s) },
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const SECRETS = {
  secretPhrase: 'word1 word2 word3',
  secretSeed: '0xseedseed',
  password: 'hunter2',
  token: 'tok-123',
  apiKey: 'sk-abc',
};

test('secret-bearing fields are redacted at the top level and nested', () => {
  const out = captured();
  const log = createLogger({ level: 'info', destination: out.destination });
  log.info({ ...SECRETS }, 'top level');
  log.info({ wallet: { ...SECRETS }, deeper: { cfg: { ...SECRETS } } }, 'nested');
  const text = out.text();
  for (const value of Object.values(SECRETS)) assert.ok(!text.includes(value), `'${value}' reached the log: ${text}`);
  const [top, nested] = out.lines();
  for (const k of Object.keys(SECRETS)) {
    assert.equal(top[k], '(redacted)', k);
    assert.equal((nested.wallet as Record<string, unknown>)[k], '(redacted)', `wallet.${k}`);
    assert.equal(
      ((nested.deeper as Record<string, unknown>).cfg as Record<string, unknown>)[k],
      '(redacted)',
      `deeper.cfg.${k}`,
    );
  }
  for (const k of Object.keys(SECRETS)) assert.ok(REDACTED_FIELDS.includes(k), `${k} is in REDACTED_FIELDS`);
});

test('wallet and hotkey names stay readable', () => {
  const out = captured();
  const log = createLogger({ level: 'info', destination: out.destination });
  log.info(
    { hotkey: 'default', wallet: 'default', miner: { wallet: 'miner', hotkey: 'hk1', netuid: 102 } },
    'committing',
  );
  const [line] = out.lines();
  assert.equal(line.hotkey, 'default');
  assert.equal(line.wallet, 'default');
  assert.deepEqual(line.miner, { wallet: 'miner', hotkey: 'hk1', netuid: 102 });
  assert.equal(line.msg, 'committing');
});

test('a child logger keeps the redaction', () => {
  const out = captured();
  const log = createLogger({ level: 'info', destination: out.destination }).child({ module: 'wallet' });
  log.warn({ apiKey: 'sk-child', hotkey: 'hk1' }, 'child');
  const [line] = out.lines();
  assert.equal(line.apiKey, '(redacted)');
  assert.equal(line.hotkey, 'hk1');
  assert.equal(line.module, 'wallet');
});
