"""Python huggingface_hub (the validators' client) against a hub given by HF_ENDPOINT.

Usage: hub_peer.py <command> [args...]; prints one JSON object on stdout.
  download <repo> <filename> <revision>       hf_hub_download -> {"sha256", "size", "commit"}
  fetch_shard <repo> <filename> <revision> <dir>
                                              hf_hub_download into local_dir, as Connito's validator calls it
                                              (download_checkpoint_from_hf, connito/shared/hf_distribute.py) -> {"sha256", "size"}
  upload <repo> <message> <local>=<path>...   create_repo(exist_ok) + create_commit -> {"commit"}
  publish <repo> <message> <folder>           create_repo(exist_ok, private=False) + upload_folder(allow_patterns=["model*.pt"]),
                                              as Connito's upload_checkpoint_to_hf does -> {"commit"}
  refs <repo>                                 list_repo_refs -> {"branches": [[name, target_commit], ...]}
  info <repo> <revision>                      model_info(files_metadata=True) -> {"sha", "files": {path: [size, lfs sha256]}}
  missing <repo> <filename> <revision>        hf_hub_download expecting a failure -> {"error": class name, "message"}
"""

import hashlib
import json
import os
import sys

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv):
    cmd, args = argv[0], argv[1:]
    api = HfApi()  # endpoint and token from HF_ENDPOINT / HF_TOKEN, as a validator's would be
    if cmd == "download":
        repo, filename, revision = args
        path = hf_hub_download(repo_id=repo, filename=filename, revision=revision)
        # The snapshot folder is named by the full commit sha the hub reported (X-Repo-Commit).
        commit = path.split(os.sep + "snapshots" + os.sep, 1)[1].split(os.sep, 1)[0]
        return {"sha256": sha256_of(path), "size": os.path.getsize(path), "commit": commit}
    if cmd == "fetch_shard":
        repo, filename, revision, local_dir = args
        hf_hub_download(repo_id=repo, revision=revision, filename=filename, local_dir=local_dir)
        path = os.path.join(local_dir, filename)
        return {"sha256": sha256_of(path), "size": os.path.getsize(path)}
    if cmd == "publish":
        repo, message, folder = args
        api.create_repo(repo_id=repo, exist_ok=True, private=False)
        info = api.upload_folder(folder_path=folder, repo_id=repo, commit_message=message, allow_patterns=["model*.pt"])
        return {"commit": info.oid}
    if cmd == "upload":
        repo, message, *pairs = args
        api.create_repo(repo_id=repo, exist_ok=True)
        ops = []
        for pair in pairs:
            local, path_in_repo = pair.split("=", 1)
            ops.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=local))
        info = api.create_commit(repo_id=repo, operations=ops, commit_message=message)
        return {"commit": info.oid, "url": info.commit_url}
    if cmd == "refs":
        (repo,) = args
        refs = api.list_repo_refs(repo_id=repo)
        return {"branches": [[b.name, b.target_commit] for b in refs.branches], "tags": len(refs.tags)}
    if cmd == "info":
        repo, revision = args
        info = api.model_info(repo_id=repo, revision=revision, files_metadata=True)
        files = {s.rfilename: [s.size, s.lfs.sha256 if s.lfs else None] for s in info.siblings}
        return {"sha": info.sha, "files": files}
    if cmd == "missing":
        repo, filename, revision = args
        try:
            hf_hub_download(repo_id=repo, filename=filename, revision=revision)
        except Exception as e:  # the class is what a validator's code branches on
            return {"error": type(e).__name__, "message": str(e)}
        return {"error": None}
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
