"""The reference for `npm run bench -- hub-transfer`: Python huggingface_hub (the validators' client)
uploading and downloading one file against the hub at HF_ENDPOINT, timed inside Python (interpreter
start-up excluded). Prints {"seconds": ...}.

  hub_transfer.py upload <repo> <local file> <path in repo>
  hub_transfer.py download <repo> <path in repo> <revision>
"""

import json
import sys
import time

from huggingface_hub import HfApi, hf_hub_download

cmd, *args = sys.argv[1:]
api = HfApi()
if cmd == "upload":
    repo, local, path_in_repo = args
    api.create_repo(repo_id=repo, exist_ok=True)
    start = time.perf_counter()
    info = api.upload_file(repo_id=repo, path_or_fileobj=local, path_in_repo=path_in_repo, commit_message="bench")
    print(json.dumps({"seconds": time.perf_counter() - start, "commit": info.oid}))
elif cmd == "download":
    repo, path_in_repo, revision = args
    start = time.perf_counter()
    hf_hub_download(repo_id=repo, filename=path_in_repo, revision=revision)
    print(json.dumps({"seconds": time.perf_counter() - start}))
else:
    raise SystemExit(f"unknown command {cmd}")
