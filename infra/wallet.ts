// Bittensor wallets: <wallets>/<wallet>/hotkeys/<hotkey> is JSON with secretPhrase, secretSeed,
// publicKey, ss58Address (sr25519, SS58 prefix 42). Only folder and names ever leave this module:
// no secret reaches a log, an error message or workflow history.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { hexToU8a, isHex, u8aToHex } from '@polkadot/util';
import { cryptoWaitReady, mnemonicGenerate, mnemonicToMiniSecret, sr25519PairFromSeed } from '@polkadot/util-crypto';

export const SS58_PREFIX = 42;
/** bittensor-wallet's cryptoType for sr25519 keys. */
const SR25519_CRYPTO_TYPE = 1;

export class WalletError extends Error {
  override name = 'WalletError';
}

/** A wallet or hotkey name: letters, digits, _ . - (not '.' or '..'), at most 64 characters; never a path. */
export const WALLET_NAME_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$/;

/** Refuses a wallet or hotkey name that is not a plain name (it comes from workflow input). */
export function checkWalletName(field: 'wallet' | 'hotkey', name: string): string {
  if (typeof name !== 'string' || !WALLET_NAME_PATTERN.test(name)) {
    throw new WalletError(
      `${field} name ${JSON.stringify(name)} is invalid: use 1–64 letters, digits, '_', '.' or '-' (not '.' or '..', no '/' or '\\'), as btcli names wallets and hotkeys`,
    );
  }
  return name;
}

/** <wallets>/<wallet>/hotkeys/<hotkey>, for names that are names; the file always lies inside the wallets folder. */
export function hotkeyPath(walletsDir: string, wallet: string, hotkey: string): string {
  checkWalletName('wallet', wallet);
  checkWalletName('hotkey', hotkey);
  const file = path.join(walletsDir, wallet, 'hotkeys', hotkey);
  const rel = path.relative(path.resolve(walletsDir), path.resolve(file));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new WalletError(
      `hotkey '${hotkey}' of wallet '${wallet}' resolves to ${file}, outside the wallets folder ${walletsDir}`,
    );
  }
  return file;
}

/** Loads an sr25519 hotkey from a Bittensor wallet folder (from secretPhrase, else secretSeed). */
export async function loadHotkey(walletsDir: string, wallet: string, hotkey: string): Promise<KeyringPair> {
  await cryptoWaitReady();
  const file = hotkeyPath(walletsDir, wallet, hotkey);
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new WalletError(
      `hotkey '${hotkey}' of wallet '${wallet}' not found at ${file} (${err.code}); create it with btcli or \`minerflow wallet create\``,
    );
  });
  if (text.startsWith('$NACL') || text.startsWith('$BT_') || text.startsWith('gAAAAA')) {
    // bittensor-wallet's password-protected formats (NaCl secretbox, older ansible-vault/Fernet).
    throw new WalletError(
      `hotkey file ${file} is encrypted with a password; minerflow signs unattended, so it reads unencrypted hotkeys (as miners keep them): recreate or regenerate the hotkey without a password`,
    );
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new WalletError(`hotkey file ${file} is not valid JSON`); // never echo the content: it holds secrets
  }
  // bittensor-wallet ≥ 4 records the scheme: 1 = sr25519, 0 = ed25519. Subtensor hotkeys are sr25519.
  if (json.cryptoType !== undefined && json.cryptoType !== SR25519_CRYPTO_TYPE) {
    throw new WalletError(
      `hotkey file ${file} holds a cryptoType ${JSON.stringify(json.cryptoType)} key; minerflow signs with sr25519 hotkeys (cryptoType ${SR25519_CRYPTO_TYPE})`,
    );
  }
  const keyring = new Keyring({ type: 'sr25519', ss58Format: SS58_PREFIX });
  let pair: KeyringPair;
  const where = `hotkey '${hotkey}' of wallet '${wallet}' (${file})`;
  if (typeof json.secretPhrase === 'string' && json.secretPhrase.trim()) {
    try {
      pair = keyring.addFromUri(json.secretPhrase.trim());
    } catch {
      // The library's message may quote the phrase: say what is wrong without it.
      throw new WalletError(
        `${where}: secretPhrase is not a valid mnemonic; restore the hotkey with btcli (regen_hotkey) or fix the file`,
      );
    }
  } else if (typeof json.secretSeed === 'string' && isHex(json.secretSeed) && hexToU8a(json.secretSeed).length === 32) {
    try {
      pair = keyring.addFromSeed(hexToU8a(json.secretSeed));
    } catch {
      throw new WalletError(
        `${where}: secretSeed is not a usable sr25519 seed; restore the hotkey with btcli (regen_hotkey) or fix the file`,
      );
    }
  } else {
    throw new WalletError(`hotkey file ${file} has neither a secretPhrase nor a 32-byte hex secretSeed`);
  }
  if (typeof json.ss58Address === 'string' && json.ss58Address !== pair.address) {
    throw new WalletError(
      `hotkey file ${file}: its secret derives ${pair.address}, but the file says ss58Address ${json.ss58Address}`,
    );
  }
  return pair;
}

/** Creates a new hotkey file in Bittensor's format (mode 0600); refuses to overwrite one. */
export async function createHotkey(
  walletsDir: string,
  wallet: string,
  hotkey: string,
): Promise<{ address: string; file: string }> {
  await cryptoWaitReady();
  const file = hotkeyPath(walletsDir, wallet, hotkey);
  const phrase = mnemonicGenerate(12);
  const seed = mnemonicToMiniSecret(phrase);
  const { publicKey, secretKey } = sr25519PairFromSeed(seed);
  const keyring = new Keyring({ type: 'sr25519', ss58Format: SS58_PREFIX });
  const address = keyring.encodeAddress(publicKey);
  const body = {
    accountId: u8aToHex(publicKey),
    publicKey: u8aToHex(publicKey),
    privateKey: u8aToHex(secretKey),
    secretPhrase: phrase,
    secretSeed: u8aToHex(seed),
    ss58Address: address,
  };
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, JSON.stringify(body), { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') throw new WalletError(`hotkey file ${file} already exists; not overwriting it`);
    throw err;
  });
  return { address, file };
}

/** Loads the hotkey, creating it first if it does not exist (for the devnet only). */
export async function ensureHotkey(walletsDir: string, wallet: string, hotkey: string): Promise<KeyringPair> {
  const exists = await fs.access(hotkeyPath(walletsDir, wallet, hotkey)).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await createHotkey(walletsDir, wallet, hotkey).catch((err: unknown) => {
      if (!(err instanceof WalletError)) throw err; // created concurrently by another worker: fine
    });
  }
  return loadHotkey(walletsDir, wallet, hotkey);
}
