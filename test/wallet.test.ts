import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import { createHotkey, ensureHotkey, hotkeyPath, loadHotkey, WALLET_NAME_PATTERN } from '../infra/wallet';
import { tempDir } from './helpers/settings';

test('a created hotkey is in Bittensor format (mode 0600) and loads to the same address', async () => {
  const dir = tempDir();
  const { address, file } = await createHotkey(dir, 'miner', 'hk1');
  assert.equal(file, hotkeyPath(dir, 'miner', 'hk1'));
  const json = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, string>;
  for (const k of ['secretPhrase', 'secretSeed', 'publicKey', 'ss58Address', 'accountId'])
    assert.ok(json[k], `field ${k}`);
  assert.equal(json.ss58Address, address);
  assert.ok(address.startsWith('5'), 'SS58 prefix 42 addresses start with 5');
  assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  assert.equal((await loadHotkey(dir, 'miner', 'hk1')).address, address);
  await assert.rejects(createHotkey(dir, 'miner', 'hk1'), /already exists; not overwriting/);

  // From the seed alone (no phrase) the same key comes back.
  const { secretPhrase, ...seedOnly } = json;
  assert.ok(secretPhrase, 'secretPhrase');
  await fs.writeFile(hotkeyPath(dir, 'miner', 'seedonly'), JSON.stringify(seedOnly));
  assert.equal((await loadHotkey(dir, 'miner', 'seedonly')).address, address);
});

test('wallet errors name the file but never echo a secret', async () => {
  const dir = tempDir();
  await assert.rejects(loadHotkey(dir, 'nope', 'hk'), /hotkey 'hk' of wallet 'nope' not found at .*nope\/hotkeys\/hk/);
  const { file } = await createHotkey(dir, 'w', 'broken');
  const secret = (JSON.parse(await fs.readFile(file, 'utf8')) as { secretPhrase: string }).secretPhrase;
  await fs.writeFile(file, `{"secretPhrase": "${secret}",,,}`);
  await assert.rejects(
    loadHotkey(dir, 'w', 'broken'),
    (err: Error) => /not valid JSON/.test(err.message) && !err.message.includes(secret.split(' ')[0] + ' '),
  );
  const other = await createHotkey(dir, 'w', 'mismatch');
  const j = JSON.parse(await fs.readFile(other.file, 'utf8')) as Record<string, string>;
  await fs.writeFile(
    other.file,
    JSON.stringify({ ...j, ss58Address: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY' }),
  );
  await assert.rejects(loadHotkey(dir, 'w', 'mismatch'), /derives .* but the file says ss58Address/);
});

test('wallet and hotkey names are names: separators, dot names and empty names are refused, naming the field', async () => {
  const dir = tempDir();
  assert.ok(WALLET_NAME_PATTERN.test('miner-1.main_2'), "WALLET_NAME_PATTERN.test('miner-1.main_2')");
  assert.ok(!WALLET_NAME_PATTERN.test('x'.repeat(65)), "!WALLET_NAME_PATTERN.test('x'.repeat(65))");
  for (const bad of ['..', '.', 'a/b', 'a\\b', '', 'a\0b', '../../etc']) {
    assert.throws(
      () => hotkeyPath(dir, bad, 'hk'),
      (err: Error) =>
        err.name === 'WalletError' && err.message.startsWith(`wallet name ${JSON.stringify(bad)} is invalid`),
      `wallet ${JSON.stringify(bad)}`,
    );
    assert.throws(
      () => hotkeyPath(dir, 'w', bad),
      (err: Error) =>
        err.name === 'WalletError' && err.message.startsWith(`hotkey name ${JSON.stringify(bad)} is invalid`),
      `hotkey ${JSON.stringify(bad)}`,
    );
    await assert.rejects(createHotkey(dir, 'w', bad), /hotkey name .* is invalid/);
    await assert.rejects(ensureHotkey(dir, bad, 'hk'), /wallet name .* is invalid/);
    await assert.rejects(loadHotkey(dir, 'w', bad), /hotkey name .* is invalid/);
  }
  // Nothing was created outside (or inside) the wallets folder by the refused names.
  assert.deepEqual(await fs.readdir(dir), []);
  const { file } = await createHotkey(dir, 'miner-1.main_2', 'hk.0');
  assert.equal(file, `${dir}/miner-1.main_2/hotkeys/hk.0`);
  assert.ok(
    (await ensureHotkey(dir, 'miner-1.main_2', 'hk.0')).address,
    "(await ensureHotkey(dir, 'miner-1.main_2', 'hk.0')).address",
  );
});

test('an invalid mnemonic is a WalletError naming wallet, hotkey and file, never the phrase', async () => {
  const dir = tempDir();
  const { file } = await createHotkey(dir, 'w', 'badphrase');
  const j = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, string>;
  const phrase = 'zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra zebra quartzite';
  await fs.writeFile(file, JSON.stringify({ ...j, secretPhrase: phrase }));
  await assert.rejects(loadHotkey(dir, 'w', 'badphrase'), (err: Error) => {
    assert.equal(err.name, 'WalletError');
    assert.match(
      err.message,
      /hotkey 'badphrase' of wallet 'w' \(.*w\/hotkeys\/badphrase\): secretPhrase is not a valid mnemonic/,
    );
    assert.ok(!err.message.includes('zebra') && !err.message.includes('quartzite'), 'the phrase is not echoed');
    return true;
  });
});
