"""The Connito model hash of a safetensors file, streamed: tensor names sorted, each name's UTF-8
bytes then the tensor's raw bytes fed to hashlib.blake2b(digest_size=24). Reads in fixed chunks, so
a checkpoint of any size hashes in bounded memory.

usage: blake2b_file.py FILE [CHUNK_BYTES]  ->  {"hex": ..., "seconds": ..., "bytes": ...} on stdout
"""
import hashlib
import json
import struct
import sys
import time


def model_hash(path, chunk_bytes=8 << 20):
    h = hashlib.blake2b(digest_size=24)
    hashed = 0
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data_start = 8 + n
        for name in sorted(k for k in header if k != "__metadata__"):
            start, end = header[name]["data_offsets"]
            h.update(name.encode("utf-8"))
            f.seek(data_start + start)
            left = end - start
            while left > 0:
                got = f.readinto(view[: min(chunk_bytes, left)])
                if not got:
                    raise SystemExit(f"{path}: tensor '{name}' runs past the end of the file (truncated?)")
                h.update(view[:got])
                left -= got
                hashed += got
    return h.hexdigest(), hashed


if __name__ == "__main__":
    path = sys.argv[1]
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 8 << 20
    t0 = time.perf_counter()
    hex_digest, hashed = model_hash(path, chunk)
    print(json.dumps({"hex": hex_digest, "seconds": time.perf_counter() - t0, "bytes": hashed}))
