#!/usr/bin/env bash
# TensorFlow.js's native CPU backend (@tensorflow/tfjs-node) for the built-in trainer, without the
# download its own install does from Google's storage (unreachable from most hosts, so npm drops the
# optional dependency and training runs on wasm, 2-5x slower). Instead:
#   - the TensorFlow C library comes from PyPI's tensorflow-cpu wheel (libtensorflow_cc.so.2 exports
#     the C and eager C APIs the binding calls, and its headers are in the wheel too);
#   - tfjs-node and its JS dependencies come from the npm registry, installed without scripts into
#     .tools/tfjs-node, their tfjs-core linked to ours (one engine, one kernel registry);
#   - the binding (N-API, tfjs_binding.node) is compiled here with node-gyp against that library.
# model/backend.ts loads it from there. Idempotent (a stamp file); MINERFLOW_TFJS_NODE_DIR moves it.
# scripts/setup.sh treats a failure as "train on wasm".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DIR="${MINERFLOW_TFJS_NODE_DIR:-.tools/tfjs-node}"
TFJS_VERSION=4.22.0
TF_VERSION=2.18.1 # tensorflow-cpu wheel; its C API is what tfjs-node 4.22's binding was written for (TF 2.9+)
NAPI=8            # the highest N-API version tfjs-node 4.22 declares (package.json binary.napi_versions)
WANT="tfjs-node $TFJS_VERSION, libtensorflow $TF_VERSION from tensorflow-cpu, napi $NAPI, tfjs-core from $ROOT"
STAMP="$DIR/.minerflow-stamp"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then exit 0; fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "setup: tfjs-node from the tensorflow-cpu wheel is set up for Linux x86_64 only; training uses wasm" >&2
  exit 1
fi

echo "setup: building tfjs-node $TFJS_VERSION against libtensorflow $TF_VERSION (PyPI tensorflow-cpu) in $DIR (first run only)..." >&2
# node-gyp needs a C++ compiler, make and the headers of the running node (node_api.h).
if ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "setup: g++ and make are needed to build tfjs-node: sudo apt-get install g++ make" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make >&2
fi
NODE_PREFIX="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
if [ ! -f "$NODE_PREFIX/include/node/node_api.h" ]; then
  echo "setup: node's headers are not in $NODE_PREFIX/include/node (Debian: apt-get install libnode-dev); cannot build tfjs-node" >&2
  exit 1
fi
NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || { echo "setup: npm's bundled node-gyp not found at $NODE_GYP" >&2; exit 1; }

rm -rf "$DIR"
mkdir -p "$DIR"
echo '{"private": true, "description": "tfjs-node built by scripts/setup-tfjs-node.sh"}' > "$DIR/package.json"
npm install --prefix "$DIR" --ignore-scripts --no-save --no-package-lock --no-audit --no-fund \
  "@tensorflow/tfjs-node@$TFJS_VERSION" >&2
TF_MODULES="$DIR/node_modules/@tensorflow"
for pkg in tfjs-core tfjs-backend-cpu; do
  rm -rf "${TF_MODULES:?}/$pkg"
  ln -s "$ROOT/node_modules/@tensorflow/$pkg" "$TF_MODULES/$pkg"
done

# The C library and headers, from the wheel (any Python tag: only the .so files are used).
PIP=(python3 -m pip)
if ! python3 -m pip --version >/dev/null 2>&1; then
  python3 -m venv "$DIR/pip-venv" >&2
  PIP=("$DIR/pip-venv/bin/pip")
fi
"${PIP[@]}" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux2014_x86_64 -d "$DIR/wheel" "tensorflow-cpu==$TF_VERSION" >&2
NODE_PKG="$TF_MODULES/tfjs-node"
mkdir -p "$NODE_PKG/deps/lib"
python3 - "$DIR/wheel" "$NODE_PKG/deps" <<'EOF'
import pathlib, shutil, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("tensorflow_cpu-*.whl"))
deps = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name in ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2"):
            target = deps / "lib" / name.split("/")[-1]
        elif name.startswith("tensorflow/include/") and not name.endswith("/"):
            target = deps / "include" / name[len("tensorflow/include/"):]
        else:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
EOF
rm -rf "$DIR/wheel" "$DIR/pip-venv"
# binding.gyp links -ltensorflow -ltensorflow_framework; the binding then needs the sonames.
ln -sf libtensorflow_cc.so.2 "$NODE_PKG/deps/lib/libtensorflow.so"
ln -sf libtensorflow_framework.so.2 "$NODE_PKG/deps/lib/libtensorflow_framework.so"
(
  cd "$NODE_PKG"
  node "$NODE_GYP" rebuild --nodedir="$NODE_PREFIX" -- \
    -Dnapi_build_version=$NAPI -Dmodule_name=tfjs_binding -Dmodule_path="lib/napi-v$NAPI" >&2
  rm -rf build
)
# Proof it loads and computes, before the stamp says it is ready.
MINERFLOW_TFJS_NODE_DIR="$DIR" TF_CPP_MIN_LOG_LEVEL=2 node -e "
  const tf = require(require.resolve('@tensorflow/tfjs-node', { paths: [process.argv[1]] }));
  const y = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[1], [1]])).dataSync();
  if (y[0] !== 3 || y[1] !== 7) throw new Error('tfjs-node computed ' + y);
  console.error('setup: tfjs-node ready (libtensorflow ' + tf.backend().binding.TF_Version + ')');
" "$DIR"
echo "$WANT" > "$STAMP"
