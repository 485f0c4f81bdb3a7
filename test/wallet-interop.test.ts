// Our hotkey loader against Python bittensor-wallet (the library btcli and miners use): the same
// wallet files give the same ss58 address, and sr25519 signatures verify across the two.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { test } from 'node:test';
import { signatureVerify } from '@polkadot/util-crypto';
import { createHotkey, hotkeyPath, loadHotkey, WalletError } from '../infra/wallet';
import { python } from './helpers/python';
import { tempDir } from './helpers/settings';

const MODEL_HASH = '3f0c9a1be27d44c8a5f1e06b7d92c3a4e8b1f05d6c7a2e93'; // what commit 1 signs

/** Python: a new wallet hotkey without a password, as `btcli wallet new_hotkey --no-use-password` makes. */
function pythonCreateHotkey(
  dir: string,
  wallet: string,
  hotkey: string,
): { ss58: string; publicKey: string; signature: string } {
  const out = python(
    `
import json, sys
from bittensor_wallet import Wallet
w = Wallet(name=sys.argv[2], hotkey=sys.argv[3], path=sys.argv[1])
w.create_new_hotkey(n_words=12, use_password=False, overwrite=False, suppress=True)
kp = w.get_hotkey()
print(json.dumps({"ss58": kp.ss58_address, "publicKey": "0x" + kp.public_key.hex(), "signature": kp.sign(sys.argv[4].encode()).hex()}))
`,
    [dir, wallet, hotkey, MODEL_HASH],
  );
  return JSON.parse(out) as { ss58: string; publicKey: string; signature: string };
}

function pythonVerify(ss58: string, message: string, signatureHex: string): boolean {
  const out = python(
    `
import sys
from bittensor_wallet import Keypair
print(Keypair(ss58_address=sys.argv[1]).verify(sys.argv[2].encode(), bytes.fromhex(sys.argv[3])))
`,
    [ss58, message, signatureHex],
  );
  return out.trim() === 'True';
}

test('a hotkey made by bittensor-wallet loads to the same address, from its phrase and from its seed alone', async () => {
  const dir = tempDir();
  const py = pythonCreateHotkey(dir, 'miner', 'hk1');
  assert.match(py.ss58, /^5[1-9A-HJ-NP-Za-km-z]{47}$/);

  const pair = await loadHotkey(dir, 'miner', 'hk1');
  assert.equal(pair.address, py.ss58);
  assert.equal(Buffer.from(pair.publicKey).toString('hex'), py.publicKey.slice(2));

  // A file holding only secretSeed (no phrase, no address to cross-check) derives the same key.
  const json = JSON.parse(await fs.readFile(hotkeyPath(dir, 'miner', 'hk1'), 'utf8')) as Record<string, string>;
  assert.ok(json.secretPhrase && json.secretSeed, 'bittensor-wallet writes both secretPhrase and secretSeed');
  const seedFile = hotkeyPath(dir, 'miner', 'seedonly');
  await fs.writeFile(seedFile, JSON.stringify({ secretSeed: json.secretSeed }), { mode: 0o600 });
  assert.equal((await loadHotkey(dir, 'miner', 'seedonly')).address, py.ss58);
  // And one holding only the phrase.
  await fs.writeFile(hotkeyPath(dir, 'miner', 'phraseonly'), JSON.stringify({ secretPhrase: json.secretPhrase }), {
    mode: 0o600,
  });
  assert.equal((await loadHotkey(dir, 'miner', 'phraseonly')).address, py.ss58);
});

test('signatures cross over: ours verify in bittensor-wallet, bittensor-wallet’s verify in ours', async () => {
  const dir = tempDir();
  const py = pythonCreateHotkey(dir, 'miner', 'hk1');
  const pair = await loadHotkey(dir, 'miner', 'hk1');

  // Ours → Python: the commit-1 signature of a model hash, as activities/commit.ts makes it.
  const ours = Buffer.from(pair.sign(MODEL_HASH)).toString('hex');
  assert.equal(pythonVerify(py.ss58, MODEL_HASH, ours), true);
  assert.equal(pythonVerify(py.ss58, MODEL_HASH.replace(/^3/, '4'), ours), false, 'another hash does not verify');

  // Python → ours.
  assert.equal(signatureVerify(MODEL_HASH, Buffer.from(py.signature, 'hex'), pair.address).isValid, true);
  assert.equal(
    signatureVerify(MODEL_HASH.replace(/^3/, '4'), Buffer.from(py.signature, 'hex'), pair.address).isValid,
    false,
  );
});

test('a hotkey made by minerflow loads in bittensor-wallet to the same address', async () => {
  const dir = tempDir();
  const { address } = await createHotkey(dir, 'ours', 'hk');
  const out = python(
    `
import sys
from bittensor_wallet import Wallet
print(Wallet(name="ours", hotkey="hk", path=sys.argv[1]).get_hotkey().ss58_address)
`,
    [dir],
  );
  assert.equal(out.trim(), address);
});

test('a password-protected or ed25519 hotkey is refused with a reason, never its content', async () => {
  const dir = tempDir();
  python(
    `
import sys
from bittensor_wallet import Keypair, Wallet
w = Wallet(name="miner", hotkey="locked", path=sys.argv[1])
w.hotkey_file.set_keypair(Keypair.create_from_mnemonic(Keypair.generate_mnemonic(12)), encrypt=True, overwrite=True, password="Correct-Horse-42!")
`,
    [dir],
  );
  await assert.rejects(loadHotkey(dir, 'miner', 'locked'), (err: Error) => {
    assert.ok(err instanceof WalletError, 'err instanceof WalletError');
    assert.match(err.message, /hotkey file .*miner\/hotkeys\/locked is encrypted with a password/);
    assert.ok(!err.message.includes('$NACL'), "!err.message.includes('$NACL')");
    return true;
  });

  const { file } = await createHotkey(dir, 'miner', 'ed');
  const json = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  await fs.writeFile(file, JSON.stringify({ ...json, cryptoType: 0 }));
  await assert.rejects(loadHotkey(dir, 'miner', 'ed'), (err: Error) => {
    assert.match(err.message, /holds a cryptoType 0 key; minerflow signs with sr25519 hotkeys/);
    assert.ok(!err.message.includes(String(json.secretPhrase).split(' ')[0] + ' '), 'no secret in the message');
    return true;
  });
});
