"""Which BLAS this torch really runs on, and a refusal to benchmark against the netlib reference BLAS.

Debian's python3-torch is built with BLAS_INFO=generic: it calls whatever libblas.so.3 the dynamic
linker finds, which is the slow netlib reference unless OpenBLAS (or another optimised BLAS) is
installed as the libblas.so.3 alternative. No PyTorch user trains on the reference BLAS (pip wheels
bring MKL), so a benchmark against it flatters us. The truth is in /proc/self/maps after a matmul.
"""
import ctypes
import os
import sys

import torch

FIX = (
    "install OpenBLAS: `apt-get install libopenblas0-pthread` (scripts/setup-torch.sh does this), or point the "
    "alternative at it: `update-alternatives --set libblas.so.3-x86_64-linux-gnu "
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3`"
)


def blas_info():
    """A one-line description of the BLAS torch uses; exits with a clear message on the reference BLAS."""
    a = torch.ones(64, 64)
    (a @ a).sum().item()  # makes sure the BLAS is loaded and called
    build = dict(
        kv.strip().split("=", 1)
        for line in torch.__config__.show().splitlines()
        if "BLAS_INFO=" in line
        for kv in line.split(":", 1)[1].split(",")
        if "=" in kv
    )
    mapped = {line.split()[-1] for line in open("/proc/self/maps") if "/" in line and ("blas" in line.lower() or "mkl" in line.lower())}
    real = sorted({os.path.realpath(p) for p in mapped})
    # torch calls the BLAS symbols of the libblas.so.3 it was linked against (BLAS_INFO=generic) or MKL.
    libblas = sorted({os.path.realpath(p) for p in mapped if os.path.basename(p).startswith("libblas.so")})
    text = f"torch {torch.__version__} BLAS_INFO={build.get('BLAS_INFO', '?')}"
    if build.get("BLAS_INFO") == "mkl" or any("libmkl" in p for p in real):
        return f"{text}, MKL ({', '.join(p for p in real if 'mkl' in p)})"
    fast = [p for p in libblas if any(name in p for name in ("openblas", "blis", "atlas", "mkl"))]
    if fast:
        openblas = [p for p in real if "libopenblas" in p]
        return f"{text}, {openblas_config(openblas) if openblas else 'optimised BLAS'} via {', '.join(fast)}"
    # Debian's libblas3 (…/blas/libblas.so.3), or no BLAS library at all: the netlib reference.
    sys.stderr.write(
        f"refusing to benchmark: PyTorch is running on the netlib reference BLAS ({text}; libblas.so.3 is "
        f"{', '.join(libblas) or 'not mapped'}), 3-5x slower than the OpenBLAS or MKL any PyTorch user has. Fix: {FIX}\n"
    )
    sys.exit(3)


def openblas_config(paths):
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_config.restype = ctypes.c_char_p
            # Its first words only: the rest names the build's baseline arch, not the kernels picked here.
            version = " ".join(lib.openblas_get_config().decode().split()[:2])
            return f"{version} ({lib.openblas_get_num_threads()} threads)"
        except (OSError, AttributeError):
            continue
    return "OpenBLAS"


if __name__ == "__main__":
    print(blas_info())
