import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import { createHotkey, hotkeyPath, loadHotkey } from '../infra/wallet';
import { tempDir } from './helpers/settings';

test('a created hotkey is in Bittensor format (mode 0600) and loads to the same address', async () => {
  const dir = tempDir();
  const { address, file } = await createHotkey(dir, 'miner', 'hk1');
  assert.equal(file, hotkeyPath(dir, 'miner', 'hk1'));
  const json = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, string>;
  for (const k of ['secretPhrase', 'secretSeed', 'publicKey', 'ss58Address', 'accountId']) assert.ok(json[k], `field ${k}`);
  assert.equal(json.ss58Address, address);
  assert.ok(address.startsWith('5'), 'SS58 prefix 42 addresses start with 5');
  assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  assert.equal((await loadHotkey(dir, 'miner', 'hk1')).address, address);
  await assert.rejects(createHotkey(dir, 'miner', 'hk1'), /already exists; not overwriting/);

  // From the seed alone (no phrase) the same key comes back.
  const { secretPhrase, ...seedOnly } = json;
  assert.ok(secretPhrase);
  await fs.writeFile(hotkeyPath(dir, 'miner', 'seedonly'), JSON.stringify(seedOnly));
  assert.equal((await loadHotkey(dir, 'miner', 'seedonly')).address, address);
});

test('wallet errors name the file but never echo a secret', async () => {
  const dir = tempDir();
  await assert.rejects(loadHotkey(dir, 'nope', 'hk'), /hotkey 'hk' of wallet 'nope' not found at .*nope\/hotkeys\/hk/);
  const { file } = await createHotkey(dir, 'w', 'broken');
  const secret = (JSON.parse(await fs.readFile(file, 'utf8')) as { secretPhrase: string }).secretPhrase;
  await fs.writeFile(file, `{"secretPhrase": "${secret}",,,}`);
  await assert.rejects(loadHotkey(dir, 'w', 'broken'), (err: Error) => /not valid JSON/.test(err.message) && !err.message.includes(secret.split(' ')[0] + ' '));
  const other = await createHotkey(dir, 'w', 'mismatch');
  const j = JSON.parse(await fs.readFile(other.file, 'utf8')) as Record<string, string>;
  await fs.writeFile(other.file, JSON.stringify({ ...j, ss58Address: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY' }));
  await assert.rejects(loadHotkey(dir, 'w', 'mismatch'), /derives .* but the file says ss58Address/);
});
