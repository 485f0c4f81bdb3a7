#!/usr/bin/env bash
# Builds the official Temporal CLI (dev server with the Web UI) from its Go module, once,
# into .tools/bin (git-ignored). Nothing on npm or Debian ships it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="v1.5.1"   # newest tag whose go.mod has no `replace` (go install refuses those)
BIN=".tools/bin/temporal"
STAMP=".tools/bin/temporal.version"
if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup: the Go toolchain is needed to build the Temporal CLI (go install github.com/temporalio/cli/cmd/temporal@$VERSION)." >&2
  echo "setup: install Go, or point MINERFLOW_TEMPORAL_BIN at an existing 'temporal' binary." >&2
  exit 1
fi
echo "setup: building the Temporal CLI $VERSION from its Go module (first run only, ~4 minutes on 2 cores)..." >&2
mkdir -p .tools/bin
GOBIN="$PWD/.tools/bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "github.com/temporalio/cli/cmd/temporal@$VERSION"
echo "$VERSION" > "$STAMP"
echo "setup: built $("$BIN" --version)" >&2
