"""datasketch MinHashLSH on the same documents, shingles, threshold and permutations as ours.

Usage: near_dup.py <docs.jsonl> <threshold> <permutations> <shingle_words>
Prints JSON: {"seconds": s, "pairs": [[doc, match], ...]} where a pair is (query, candidate).
"""
import json
import re
import sys
import time

from datasketch import MinHash, MinHashLSH

path, threshold, perms, k = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
docs = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
WORD = re.compile(r"\w+")

t0 = time.perf_counter()
lsh = MinHashLSH(threshold=threshold, num_perm=perms)
pairs = []
for d in docs:
    words = WORD.findall(d["text"].lower())
    shingles = [" ".join(words[i : i + k]).encode("utf-8") for i in range(max(1, len(words) - k + 1))]
    m = MinHash(num_perm=perms)
    m.update_batch(shingles)
    for match in lsh.query(m):  # datasketch's answer: LSH candidates
        pairs.append([d["id"], match])
    lsh.insert(d["id"], m)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "pairs": pairs}))
