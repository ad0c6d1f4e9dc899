"""A Hugging Face Hub look-alike for tests (FastAPI + uvicorn on 127.0.0.1, in memory).

(About 1000 lines in one file on purpose: a test server that one fixture starts in a thread; its routes
mirror the Hub's REST API one to one and read best side by side with the state they act on.)

It behaves like the Hub where huggingface_hub 2.x, transformers and datasets depend on it:

* **Tokens.** ``Authorization: Bearer <token>`` is checked against :data:`TOKENS` (``hub.tokens``): an
  unknown token gets 401 "Invalid credentials in Authorization header" on every route (huggingface_hub
  raises ``HfHubHTTPError``); no token is anonymous. Writes need a ``write`` token of the repo's owner
  (anonymous: 401, read-only token or another namespace: 403). A private repo is hidden from everyone but
  its owner: 401 (anonymous) or 404 (another user), both with ``X-Error-Code: RepoNotFound`` (huggingface_hub
  raises ``RepositoryNotFoundError``), as the Hub answers.
* **LFS.** A new repo starts with the Hub's default ``.gitattributes``. ``preupload`` answers ``"lfs"`` for a
  file that matches a ``filter=lfs`` pattern of the revision's ``.gitattributes``, is 10 MiB or larger, or whose
  512-byte sample is binary (holds a NUL byte: PNGs, safetensors headers), else ``"regular"``; a commit that
  sends such a file inline is rejected (400), as the Hub rejects binary files outside LFS. LFS files go through
  ``POST {repo}.git/info/lfs/objects/batch`` (basic transfer), a signed ``PUT`` to the storage origin (the sha256
  and size are checked) and ``POST .../objects/verify``; the commit then names them as ``lfsFile``.
* **Xet off.** huggingface_hub chooses Xet on the client (``hf_xet`` installed and ``HF_HUB_DISABLE_XET``
  unset), not from a server answer; :func:`hub_env` sets ``HF_HUB_DISABLE_XET=1``, no response carries Xet
  headers (``X-Xet-Hash``, a ``xet-auth`` link), and the Xet token routes answer 501 saying so.
* **Downloads.** ``resolve`` of a regular file answers 200 with ``ETag`` = git blob sha1; of an LFS file a 302 to
  a signed URL on the storage origin (a second port of the same server, so another origin, like the Hub's CDN:
  huggingface_hub drops the ``Authorization`` header there) with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``.
  Every answer carries ``X-Repo-Commit``, so ``hf_hub_download`` fills ``blobs/``, ``snapshots/<sha>/`` and
  ``refs/<revision>``. ``Range`` requests are honoured.
* **Revisions.** Branches (``create_branch``), tags (``create_tag``), ``list_repo_refs`` and full commit shas
  resolve everywhere a revision is taken (repo info, tree, paths-info, resolve, commit to a branch).
* **Failures on request.** ``hub.fail_next(n, path=REGEX, status=503, method=None)`` answers the next ``n``
  matching requests with ``status`` (huggingface_hub retries 408/429/5xx with backoff 1 s, 2 s, ...);
  ``hub.count(method, REGEX)`` counts the requests that reached the server, ``hub.log`` holds
  ``(method, path, status, user)``.

Routes (``{kind}`` is ``models``/``datasets``/``spaces``; repo URLs take the ``datasets/``/``spaces/`` prefix)::

    GET  /api/whoami-v2                                       the token's user (401 without one)
    POST /api/repos/create                                    409 when the repo exists
    POST /api/validate-yaml                                   400 when the card's front matter is not YAML
    GET  /api/{kind}/{ns}/{name}[/revision/{rev}]             {id, sha, private, siblings}
    GET  /api/{kind}/{ns}/{name}/tree/{rev}[/{path}]          [{type, path, oid, size, lfs?}]
    POST /api/{kind}/{ns}/{name}/paths-info/{rev}             same entries for the given paths
    GET  /api/{kind}/{ns}/{name}/refs                         branches and tags
    POST /api/{kind}/{ns}/{name}/branch/{branch}              create a branch (409 when it exists)
    POST /api/{kind}/{ns}/{name}/tag/{rev}                    create a tag (409 when it exists)
    POST /api/{kind}/{ns}/{name}/preupload/{rev}              uploadMode "lfs" / "regular" per file
    POST /api/{kind}/{ns}/{name}/commit/{rev}                 NDJSON: header, file, lfsFile, deletedFile/Folder
    POST /[prefix]{ns}/{name}.git/info/lfs/objects/batch      LFS upload actions (basic transfer)
    POST /[prefix]{ns}/{name}.git/info/lfs/objects/verify     LFS object present with that size
    PUT  /lfs-upload/{kind}/{ns}/{name}/{oid}?sig=            (storage origin) the object's bytes
    GET  /lfs-files/{kind}/{ns}/{name}/{oid}?sig=             (storage origin) the object's bytes
    HEAD/GET /[prefix]{ns}/{name}/resolve/{rev}/{path}        see "Downloads"

Use from tests (import the fixture into a test module or a conftest)::

    from hub_server import hub_server, run_in_hub_env          # noqa: F401  (pytest fixture)

    def test_push(hub_server):
        run_in_hub_env(hub_server, '''
            from huggingface_hub import HfApi
            HfApi().create_repo("tester/x", exist_ok=True)
        ''')

``hub_server`` yields the base URL (a ``str``; its ``.hub`` attribute is the in-memory :class:`FakeHub`,
e.g. ``hub_server.hub.files("tester/x")``). Client code must run in a subprocess (:func:`run_in_hub_env`,
or the console scripts with :func:`hub_env`) because huggingface_hub reads ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` when it is imported. Run ``python tests/hub_server.py --port 8765`` to use it by hand.
"""

# no ``from __future__ import annotations``: FastAPI must see the real ``Request`` annotations
import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ALICE_READ_TOKEN",
    "ALICE_WRITE_TOKEN",
    "DEFAULT_GITATTRIBUTES",
    "TOKENS",
    "FakeHub",
    "HubServer",
    "HubURL",
    "create_app",
    "hub_env",
    "hub_server",
    "run_in_hub_env",
]

USER = "tester"
#: token -> (user, role). ``hf_fake`` (user ``tester``) is the default token of :func:`hub_env`.
TOKENS: dict[str, tuple[str, str]] = {
    "hf_fake": (USER, "write"),
    "hf_alice_write": ("alice", "write"),
    "hf_alice_read": ("alice", "read"),
    "hf_bob_write": ("bob", "write"),
}
ALICE_WRITE_TOKEN, ALICE_READ_TOKEN = "hf_alice_write", "hf_alice_read"
REPO_ROOT = Path(__file__).resolve().parents[1]
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub refuses regular (inline) files from 10 MiB on
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"

# fmt: off
_MODEL_LFS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz",
    "*.zip", "*.zst", "*tfevents*",
)
_MEDIA_LFS = ("*.mp3", "*.ogg", "*.wav", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.mp4", "*.avi", "*.mkv", "*.webm", "*.mov")
# fmt: on
#: The ``.gitattributes`` the Hub writes into a new model repo (its LFS lines).
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _MODEL_LFS)
#: A new dataset repo's: media files are tracked with LFS too.
DATASET_GITATTRIBUTES = DEFAULT_GITATTRIBUTES + "".join(
    f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _MEDIA_LFS
)


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


@dataclass(frozen=True)
class _Blob:
    """A file of a commit: its content and whether git holds it as an LFS pointer."""

    data: bytes
    lfs: bool = False

    @property
    def oid(self) -> str:  # the git object id: of the pointer file for LFS, like the Hub's tree API
        return _git_blob_sha1(_lfs_pointer(self.data) if self.lfs else self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    commits: dict[str, dict[str, _Blob]] = field(default_factory=dict)  # sha -> snapshot
    parents: dict[str, str | None] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (the repo's LFS storage)

    @property
    def owner(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> str | None:
        """Commit sha of a branch, a tag or a full commit sha (None when unknown)."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None


@dataclass
class _Failure:
    pattern: re.Pattern
    method: str | None
    status: int
    remaining: int


class FakeHub:
    """In-memory repos, tokens and failure switches; thread-safe. Commit ids are deterministic."""

    def __init__(self, tokens: Mapping[str, tuple[str, str]] | None = None) -> None:
        self._lock = threading.Lock()
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.tokens: dict[str, tuple[str, str]] = dict(TOKENS if tokens is None else tokens)
        self.requests: list[tuple[str, str]] = []  # (method, path), in order
        self.log: list[tuple[str, str, int, str | None]] = []  # (method, path, status, user)
        self.failures: list[_Failure] = []
        self.secret = os.urandom(16)
        self.storage_url: str | None = None  # the "CDN" origin (set by HubServer)

    # -- switches and counters for tests ---------------------------------------------------------
    def fail_next(self, n: int, *, path: str, status: int = 503, method: str | None = None) -> None:
        """Answer the next ``n`` requests whose path matches the regex ``path`` with ``status``."""
        with self._lock:
            self.failures.append(_Failure(re.compile(path), method and method.upper(), status, n))

    def clear_failures(self) -> None:
        with self._lock:
            self.failures.clear()

    def _take_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for f in self.failures:
                if f.remaining > 0 and (f.method is None or f.method == method) and f.pattern.search(path):
                    f.remaining -= 1
                    return f.status
        return None

    def count(self, method: str, path: str) -> int:
        """How many ``method`` requests whose path matches the regex ``path`` reached the server."""
        rx = re.compile(path)
        return sum(1 for m, p in list(self.requests) if m == method.upper() and rx.search(p))

    def add_token(self, token: str, user: str, role: str = "write") -> None:
        if role not in ("read", "write"):
            raise ValueError(f"role must be 'read' or 'write', got {role!r}")
        self.tokens[token] = (user, role)

    # -- state -----------------------------------------------------------------------------------
    def create(self, repo_type: str, repo_id: str, private: bool = False) -> tuple[_Repo, bool]:
        with self._lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                return self.repos[key], False
            repo = _Repo(repo_type, repo_id, private)
            attrs = DATASET_GITATTRIBUTES if repo_type == "dataset" else DEFAULT_GITATTRIBUTES
            files = {".gitattributes": _Blob(attrs.encode())}
            sha = self._commit_id(None, files, "initial commit")
            repo.commits[sha], repo.parents[sha], repo.messages[sha] = files, None, "initial commit"
            repo.branches["main"] = sha
            self.repos[key] = repo
            return repo, True

    def get(self, repo_type: str, repo_id: str) -> _Repo | None:
        return self.repos.get((repo_type, repo_id))

    def commit(
        self, repo: _Repo, branch: str, adds: Mapping[str, _Blob], deletes: list[str], folders: list[str], message: str
    ) -> str:
        with self._lock:
            parent = repo.branches[branch]
            files = dict(repo.commits[parent])
            for path in deletes:
                files.pop(path, None)
            for folder in folders:
                prefix = folder.rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            files.update(adds)
            sha = self._commit_id(parent, files, message)
            repo.commits[sha], repo.parents[sha], repo.messages[sha] = files, parent, message
            repo.branches[branch] = sha
            return sha

    @staticmethod
    def _commit_id(parent: str | None, files: Mapping[str, _Blob], message: str) -> str:
        h = hashlib.sha1()
        h.update((parent or "").encode())
        h.update(message.encode())
        for path in sorted(files):
            h.update(path.encode() + b"\0" + files[path].oid.encode())
        return h.hexdigest()

    def _snapshot(self, repo_id: str, repo_type: str, revision: str) -> dict[str, _Blob]:
        repo = self.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the fake hub")
        sha = repo.resolve(revision)
        if sha is None:
            raise KeyError(f"no revision {revision!r} in {repo_id!r}")
        return repo.commits[sha]

    def files(
        self, repo_id: str, repo_type: str = "model", revision: str = "main", *, gitattributes: bool = False
    ) -> dict[str, bytes]:
        """Snapshot ``{path: content}`` of a repo at a revision (LFS files with their content).

        The ``.gitattributes`` the server wrote at creation is left out unless ``gitattributes``.
        """
        snap = self._snapshot(repo_id, repo_type, revision)
        return {p: b.data for p, b in snap.items() if gitattributes or p != ".gitattributes"}

    def lfs_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> set[str]:
        """Paths of a revision that git holds as LFS pointers (they were uploaded through LFS)."""
        return {p for p, b in self._snapshot(repo_id, repo_type, revision).items() if b.lfs}

    def sign(self, path: str) -> str:
        return hmac.new(self.secret, path.encode(), hashlib.sha256).hexdigest()[:32]


def _lfs_patterns(gitattributes: bytes | None) -> list[str]:
    if not gitattributes:
        return []
    out = []
    for line in gitattributes.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            out.append(parts[0])
    return out


def _matches(pattern: str, path: str) -> bool:
    """gitattributes matching: a pattern without '/' matches the base name at any depth."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.lstrip("/").replace("**/", "*"))


def upload_mode(path: str, size: int, sample: bytes, gitattributes: bytes | None) -> str:
    """The Hub's choice for one file: "lfs" (tracked pattern, >= 10 MiB or binary sample) or "regular"."""
    if size == 0:
        return "regular"
    if any(_matches(p, path) for p in _lfs_patterns(gitattributes)):
        return "lfs"
    if size >= _LFS_MIN_SIZE or b"\0" in sample:
        return "lfs"
    return "regular"


def create_app(hub: FakeHub | None = None):
    """The FastAPI app serving ``hub`` (a new empty one by default)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    hub = hub if hub is not None else FakeHub()
    app = FastAPI(title="fake-hub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub

    def error(status: int, code: str | None, message: str) -> Response:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def ident(request: Request) -> tuple[str, str] | None:
        return request.state.ident

    @app.middleware("http")
    async def auth_log_and_fail(request: Request, call_next):
        path = request.url.path
        hub.requests.append((request.method, path))
        request.state.ident = None
        auth = request.headers.get("authorization")
        response = None
        if auth and not path.startswith(("/lfs-upload/", "/lfs-files/")):
            token = auth.split(" ", 1)[1].strip() if auth.lower().startswith("bearer ") else ""
            request.state.ident = hub.tokens.get(token)
            if request.state.ident is None:
                response = error(401, None, INVALID_CREDENTIALS)
        status = hub._take_failure(request.method, path)
        if status is not None:
            response = error(status, None, f"injected failure ({status}) for {request.method} {path}")
        if response is None:
            response = await call_next(request)
        user = request.state.ident[0] if request.state.ident else None
        hub.log.append((request.method, path, response.status_code, user))
        return response

    def read_error(repo: _Repo | None, request: Request, repo_id: str) -> Response | None:
        """404/401 RepoNotFound for a missing repo or a private one the caller may not see."""
        who = ident(request)
        if repo is not None and (not repo.private or (who is not None and who[0] == repo.owner)):
            return None
        status = 401 if who is None else 404
        return error(status, "RepoNotFound", f"Repository not found: {repo_id}")

    def write_error(repo: _Repo, request: Request) -> Response | None:
        who = ident(request)
        if who is None:
            return error(401, None, "You must be authenticated to write to this repo")
        if who[1] != "write":
            return error(403, None, f"the token of {who[0]} is read-only: it may not write to {repo.repo_id}")
        if who[0] != repo.owner:
            return error(403, None, f"{who[0]} has no write access to {repo.repo_id}")
        return None

    def find(kind: str, ns: str, name: str, request: Request) -> tuple[_Repo | None, Response | None]:
        repo_type = _TYPES.get(kind)
        if repo_type is None:
            return None, error(404, None, f"unknown repo type {kind!r}")
        repo = hub.get(repo_type, f"{ns}/{name}")
        return repo, read_error(repo, request, f"{ns}/{name}")

    def find_rev(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, err = find(kind, ns, name, request)
        if err:
            return None, None, err
        sha = repo.resolve(revision)
        if sha is None:
            return repo, None, error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, sha, None

    def entry(path: str, blob: _Blob) -> dict[str, Any]:
        e: dict[str, Any] = {"type": "file", "path": path, "oid": blob.oid, "size": len(blob.data)}
        if blob.lfs:
            e["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(_lfs_pointer(blob.data))}
        return e

    def entries(files: Mapping[str, _Blob], prefix: str = "", recursive: bool = True) -> list[dict[str, Any]]:
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        out: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for path in sorted(files):
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            if not recursive and "/" in rest:
                dirs.add(base + rest.split("/", 1)[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    dirs.add(base + "/".join(parts[:i]))
            out.append(entry(path, files[path]))
        out += [
            {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
            for d in sorted(dirs)
        ]
        return out

    def info(repo: _Repo, sha: str) -> dict[str, Any]:
        files = repo.commits[sha]
        siblings = []
        for p, b in sorted(files.items()):
            s: dict[str, Any] = {"rfilename": p, "size": len(b.data), "blobId": b.oid}
            if b.lfs:
                s["lfs"] = {"sha256": b.sha256, "size": len(b.data), "pointerSize": len(_lfs_pointer(b.data))}
            siblings.append(s)
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.owner,
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": "2024-01-01T00:00:00.000Z",
            "createdAt": "2024-01-01T00:00:00.000Z",
            "siblings": siblings,
        }

    def storage(request: Request) -> str:
        return (hub.storage_url or str(request.base_url)).rstrip("/")

    # -- account and repos ---------------------------------------------------------------------------
    @app.get("/api/whoami-v2")
    async def whoami(request: Request):
        who = ident(request)
        if who is None:
            return error(401, None, INVALID_CREDENTIALS)
        return {
            "type": "user",
            "id": hashlib.sha1(who[0].encode()).hexdigest()[:24],
            "name": who[0],
            "fullname": who[0].title(),
            "email": f"{who[0]}@example.invalid",
            "emailVerified": True,
            "canPay": False,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": who[1]}},
        }

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        body = await request.json()
        name = body.get("name")
        if not name:
            return error(400, None, "name is required")
        repo_type = body.get("type") or "model"
        if repo_type not in _PREFIX:
            return error(400, None, f"invalid repo type {repo_type!r}")
        who = ident(request)
        if who is None:
            return error(401, None, "You must be authenticated to create a repo")
        namespace = body.get("organization") or who[0]
        if who[1] != "write" or namespace != who[0]:
            return error(
                403, None, f"You don't have the rights to create a {repo_type} under the namespace {namespace}"
            )
        repo_id = f"{namespace}/{name}"
        url = f"{str(request.base_url).rstrip('/')}/{_PREFIX[repo_type]}{repo_id}"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        _, created = hub.create(repo_type, repo_id, private)
        if not created:
            return JSONResponse({"error": "You already created this repo", "url": url}, status_code=409)
        return {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request):
        import yaml

        content = (await request.json()).get("content", "")
        if content.startswith("---"):
            parts = content.split("---", 2)
            try:
                meta = yaml.safe_load(parts[1]) if len(parts) == 3 else None
            except yaml.YAMLError as e:
                return Response(f"Invalid YAML in the card metadata: {e}", status_code=400)
            if meta is not None and not isinstance(meta, dict):
                return Response("The card metadata must be a YAML mapping", status_code=400)
        return {}

    @app.get("/api/{kind}/{ns}/{name}")
    async def repo_info(kind: str, ns: str, name: str, request: Request):
        repo, err = find(kind, ns, name, request)
        return err or info(repo, repo.branches["main"])

    @app.get("/api/{kind}/{ns}/{name}/revision/{revision:path}")
    async def repo_info_rev(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, sha, err = find_rev(kind, ns, name, revision, request)
        return err or info(repo, sha)

    @app.get("/api/{kind}/{ns}/{name}/refs")
    async def refs(kind: str, ns: str, name: str, request: Request):
        repo, err = find(kind, ns, name, request)
        if err:
            return err

        def fmt(kind_: str, refs_: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind_}/{n}", "targetCommit": s} for n, s in sorted(refs_.items())]

        return {"branches": fmt("heads", repo.branches), "tags": fmt("tags", repo.tags), "converts": []}

    @app.post("/api/{kind}/{ns}/{name}/branch/{branch}")
    async def create_branch(kind: str, ns: str, name: str, branch: str, request: Request):
        repo, err = find(kind, ns, name, request)
        if err or (err := write_error(repo, request)):
            return err
        body = await request.json() if (await request.body()) else {}
        if branch in repo.branches:
            return error(409, None, f"Reference refs/heads/{branch} already exists")
        start = repo.resolve(body.get("startingPoint") or "main")
        if start is None:
            return error(404, "RevisionNotFound", f"Invalid rev id: {body.get('startingPoint')}")
        repo.branches[branch] = start
        return {}

    @app.post("/api/{kind}/{ns}/{name}/tag/{revision}")
    async def create_tag(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, sha, err = find_rev(kind, ns, name, revision, request)
        if err or (err := write_error(repo, request)):
            return err
        tag = (await request.json()).get("tag")
        if not tag:
            return error(400, None, "tag is required")
        if tag in repo.tags:
            return error(409, None, f"Tag {tag} already exists")
        repo.tags[tag] = sha
        return {}

    @app.get("/api/{kind}/{ns}/{name}/tree/{revision}")
    @app.get("/api/{kind}/{ns}/{name}/tree/{revision}/{path:path}")
    async def tree(kind: str, ns: str, name: str, revision: str, request: Request, path: str = ""):
        repo, sha, err = find_rev(kind, ns, name, revision, request)
        if err:
            return err
        files = repo.commits[sha]
        if path and path in files:
            return error(400, None, f"{path} is a file, not a folder")
        recursive = request.query_params.get("recursive", "false").lower() in ("1", "true")
        found = entries(files, path, recursive)
        if path and not found:
            return error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        return found

    @app.post("/api/{kind}/{ns}/{name}/paths-info/{revision}")
    async def paths_info(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, sha, err = find_rev(kind, ns, name, revision, request)
        if err:
            return err
        if "json" in request.headers.get("content-type", ""):
            paths = (await request.json()).get("paths", [])
        else:
            paths = (await request.form()).getlist("paths")
        files = repo.commits[sha]
        out = []
        for p in paths:
            if p in files:
                out.append(entry(p, files[p]))
            elif any(f.startswith(p.rstrip("/") + "/") for f in files):
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0})
        return out

    # -- uploads ---------------------------------------------------------------------------------------
    @app.post("/api/{kind}/{ns}/{name}/preupload/{revision}")
    async def preupload(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, err = find(kind, ns, name, request)
        if err or (err := write_error(repo, request)):
            return err
        sha = repo.resolve(revision)
        files = repo.commits[sha] if sha else {}
        attrs = files.get(".gitattributes")
        body = await request.json()
        ignore = [p.strip() for p in (body.get("gitIgnore") or "").splitlines() if p.strip() and p[0] != "#"]
        out = []
        for f in body.get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            path = f["path"]
            out.append(
                {
                    "path": path,
                    "uploadMode": upload_mode(path, int(f.get("size", 0)), sample, attrs.data if attrs else None),
                    "shouldIgnore": any(_matches(p, path) for p in ignore),
                    "oid": files[path].oid if path in files else None,
                }
            )
        return {"files": out, "commitOid": sha}

    def lfs_repo(kind_prefix: str, ns: str, name: str, request: Request):
        repo_type = {"": "model", "datasets": "dataset", "spaces": "space"}[kind_prefix]
        repo = hub.get(repo_type, f"{ns}/{name}")
        return repo, read_error(repo, request, f"{ns}/{name}")

    async def lfs_batch(kind_prefix: str, ns: str, name: str, request: Request):
        repo, err = lfs_repo(kind_prefix, ns, name, request)
        body = await request.json()
        if err or (body.get("operation") == "upload" and (err := write_error(repo, request))):
            return err
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            return error(400, None, "the fake hub serves LFS uploads with the basic transfer only")
        base = f"{_PREFIX[repo.repo_type]}{repo.repo_id}"
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs:
                key = f"{repo.repo_type}s/{repo.repo_id}/{oid}"
                item["actions"] = {
                    "upload": {"href": f"{storage(request)}/lfs-upload/{key}?sig={hub.sign(key)}&size={size}"},
                    "verify": {"href": f"{str(request.base_url).rstrip('/')}/{base}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            media_type="application/vnd.git-lfs+json",
        )

    async def lfs_verify(kind_prefix: str, ns: str, name: str, request: Request):
        repo, err = lfs_repo(kind_prefix, ns, name, request)
        if err or (err := write_error(repo, request)):
            return err
        body = await request.json()
        data = repo.lfs.get(body.get("oid", ""))
        if data is None or len(data) != int(body.get("size", -1)):
            return error(404, None, f"LFS object {body.get('oid')} was not uploaded (or has another size)")
        return JSONResponse({"message": "ok"}, media_type="application/vnd.git-lfs+json")

    for kind_prefix in ("", "datasets", "spaces"):
        pre = f"/{kind_prefix}" if kind_prefix else ""

        def bind(kp: str = kind_prefix):
            async def batch(ns: str, name: str, request: Request):
                return await lfs_batch(kp, ns, name.removesuffix(".git"), request)

            async def verify(ns: str, name: str, request: Request):
                return await lfs_verify(kp, ns, name.removesuffix(".git"), request)

            return batch, verify

        batch_route, verify_route = bind()
        app.add_api_route(pre + "/{ns}/{name}/info/lfs/objects/batch", batch_route, methods=["POST"])
        app.add_api_route(pre + "/{ns}/{name}/info/lfs/objects/verify", verify_route, methods=["POST"])

    @app.put("/lfs-upload/{kind}/{ns}/{name}/{oid}")
    async def lfs_put(kind: str, ns: str, name: str, oid: str, request: Request):
        key = f"{kind}/{ns}/{name}/{oid}"
        if not hmac.compare_digest(request.query_params.get("sig", ""), hub.sign(key)):
            return Response("<Error><Code>AccessDenied</Code></Error>", status_code=403)
        repo = hub.get(_TYPES.get(kind, ""), f"{ns}/{name}")
        data = await request.body()
        if repo is None or hashlib.sha256(data).hexdigest() != oid:
            return Response("<Error><Code>BadDigest</Code></Error>", status_code=400)
        if str(len(data)) != request.query_params.get("size"):
            return Response("<Error><Code>IncompleteBody</Code></Error>", status_code=400)
        repo.lfs[oid] = data
        return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    @app.post("/api/{kind}/{ns}/{name}/commit/{revision}")
    async def commit(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, err = find(kind, ns, name, request)
        if err or (err := write_error(repo, request)):
            return err
        if revision not in repo.branches:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        head = repo.commits[repo.branches[revision]]
        adds: dict[str, _Blob] = {}
        deletes: list[str] = []
        folders: list[str] = []
        message = ""
        for line in (await request.body()).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                message = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent and parent != repo.branches[revision]:
                    return error(412, None, "parentCommit is not the head of the branch")
            elif key == "file":
                if value.get("encoding") != "base64":
                    return error(400, None, "only base64-encoded regular files are supported")
                data = base64.b64decode(value["content"])
                attrs = adds.get(".gitattributes") or head.get(".gitattributes")
                if upload_mode(value["path"], len(data), data[:512], attrs.data if attrs else None) == "lfs":
                    return error(
                        400,
                        None,
                        f"Your push was rejected because {value['path']} must be stored with LFS "
                        "(binary, tracked by .gitattributes or >= 10 MiB)",
                    )
                adds[value["path"]] = _Blob(data)
            elif key == "lfsFile":
                data = repo.lfs.get(value.get("oid", ""))
                if data is None:
                    return error(422, None, f"LFS object {value.get('oid')} of {value.get('path')} was not uploaded")
                adds[value["path"]] = _Blob(data, lfs=True)
            elif key == "deletedFile":
                deletes.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            else:
                return error(400, None, f"the fake hub does not support the commit operation {key!r}")
        sha = hub.commit(repo, revision, adds, deletes, folders, message)
        base = str(request.base_url).rstrip("/")
        return {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{base}/{_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}",
            "pullRequestUrl": None,
        }

    @app.get("/api/{kind}/{ns}/{name}/xet-{token_kind}-token/{revision:path}")
    @app.get("/api/{kind}/{ns}/{name}/xet-{token_kind}-token")
    async def no_xet(kind: str, ns: str, name: str, token_kind: str, revision: str = ""):
        return error(501, None, "this test Hub has no Xet storage: set HF_HUB_DISABLE_XET=1 (hub_env does)")

    # -- downloads -------------------------------------------------------------------------------------
    def ranged(data: bytes, request: Request, headers: dict[str, str]) -> Response:
        rng = request.headers.get("range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                lo = int(m.group(1))
                hi = int(m.group(2)) if m.group(2) else len(data) - 1
            else:
                lo, hi = max(len(data) - int(m.group(2)), 0), len(data) - 1
            if lo >= len(data):
                return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
            hi = min(hi, len(data) - 1)
            part = data[lo : hi + 1]
            h = {**headers, "Content-Range": f"bytes {lo}-{hi}/{len(data)}", "Content-Length": str(len(part))}
            return Response(content=part, status_code=206, headers=h, media_type="application/octet-stream")
        return Response(content=data, status_code=200, headers=headers, media_type="application/octet-stream")

    def resolve_file(
        repo_type: str, ns: str, name: str, revision: str, path: str, request: Request, head: bool
    ) -> Response:
        repo = hub.get(repo_type, f"{ns}/{name}")
        err = read_error(repo, request, f"{ns}/{name}")
        if err:
            return err
        sha = repo.resolve(revision)
        if sha is None:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        blob = repo.commits[sha].get(path)
        if blob is None:
            r = error(404, "EntryNotFound", f"{path} does not exist on {revision}")
            r.headers["X-Repo-Commit"] = sha
            return r
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            key = f"{repo.repo_type}s/{repo.repo_id}/{blob.sha256}"
            headers.update(
                {
                    "X-Linked-Etag": f'"{blob.sha256}"',
                    "X-Linked-Size": str(len(blob.data)),
                    "Location": f"{storage(request)}/lfs-files/{key}?sig={hub.sign(key)}",
                    "Content-Length": "0",
                }
            )
            return Response(status_code=302, headers=headers)
        headers["Content-Length"] = str(len(blob.data))
        if head:
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        return ranged(blob.data, request, headers)

    @app.api_route("/lfs-files/{kind}/{ns}/{name}/{oid}", methods=["GET", "HEAD"])
    async def lfs_get(kind: str, ns: str, name: str, oid: str, request: Request):
        key = f"{kind}/{ns}/{name}/{oid}"
        repo = hub.get(_TYPES.get(kind, ""), f"{ns}/{name}")
        if not hmac.compare_digest(request.query_params.get("sig", ""), hub.sign(key)):
            return Response("<Error><Code>AccessDenied</Code></Error>", status_code=403)
        if repo is None or oid not in repo.lfs:
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404)
        data = repo.lfs[oid]
        headers = {"ETag": f'"{oid}"', "Content-Length": str(len(data)), "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        return ranged(data, request, headers)

    for prefix, repo_type in (("", "model"), ("/datasets", "dataset"), ("/spaces", "space")):

        def make(repo_type: str = repo_type):
            async def get_file(ns: str, name: str, revision: str, path: str, request: Request):
                return resolve_file(repo_type, ns, name, revision, path, request, head=False)

            async def head_file(ns: str, name: str, revision: str, path: str, request: Request):
                return resolve_file(repo_type, ns, name, revision, path, request, head=True)

            return get_file, head_file  # noqa: B023 (bound through make's default argument)

        get_file, head_file = make()
        route = prefix + "/{ns}/{name}/resolve/{revision}/{path:path}"
        app.add_api_route(route, get_file, methods=["GET"])
        app.add_api_route(route, head_file, methods=["HEAD"])

    return app


class HubURL(str):
    """The server's base URL; ``.hub`` is its :class:`FakeHub` state."""

    hub: FakeHub


class HubServer:
    """Run the fake hub with uvicorn in a daemon thread on 127.0.0.1 (free ports by default).

    The same app listens on a second port, the storage origin that LFS uploads and downloads go to.

    Example:
        >>> with HubServer() as url:          # doctest: +SKIP
        ...     run_in_hub_env(url, "from huggingface_hub import whoami; print(whoami()['name'])")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.hub = FakeHub()
        self._server = None
        self._thread: threading.Thread | None = None
        self._socks: list[socket.socket] = []

    @property
    def url(self) -> HubURL:
        u = HubURL(f"http://{self.host}:{self.port}")
        u.hub = self.hub
        return u

    def start(self, timeout: float = 30.0) -> HubURL:
        import uvicorn

        socks = []
        for port in (self.port, 0):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            socks.append(sock)
        self.port = socks[0].getsockname()[1]
        self.hub.storage_url = f"http://{self.host}:{socks[1].getsockname()[1]}"
        self._socks = socks
        config = uvicorn.Config(create_app(self.hub), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": socks}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake hub server did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock in self._socks:
            sock.close()
        self._server = self._thread = None
        self._socks = []

    def __enter__(self) -> HubURL:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubURL]:
    """Start the fake hub on a free port for the test session; yields its URL (``.hub`` = state).

    Failure switches (``hub.fail_next``) are cleared after each use by the tests that set them.
    """
    pytest.importorskip("fastapi", reason="the fake hub needs fastapi (pip install hf-stadyn[test])")
    pytest.importorskip("uvicorn", reason="the fake hub needs uvicorn (pip install hf-stadyn[test])")
    with HubServer() as url:
        yield url


def hub_env(url: str, token: str | None = "hf_fake", hf_home: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a client process talking to the fake hub at ``url``.

    Offline switches are removed (the endpoint is local), Xet, telemetry and progress bars are off, the
    cache lives in ``hf_home`` (a new temporary folder by default) and the repo root is on PYTHONPATH.
    ``token=None`` runs anonymously (no ``HF_TOKEN``, and no stored token in the fresh ``HF_HOME``).
    """
    env = dict(os.environ)
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        env.pop(k, None)
    env.update(
        HF_ENDPOINT=str(url),
        HF_HOME=hf_home or tempfile.mkdtemp(prefix="stadyn-fakehub-home-"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        GRADIO_ANALYTICS_ENABLED="False",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]),
    )
    if token is not None:
        env["HF_TOKEN"] = token
        env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    for k in ("HF_MODULES_CACHE", "HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_in_hub_env(
    url: str,
    code: str,
    *,
    token: str | None = "hf_fake",
    timeout: float = 300.0,
    check: bool = True,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run a Python snippet in a fresh interpreter with ``HF_ENDPOINT`` pointing at the fake hub.

    The snippet is dedented; ``HF_HUB_OFFLINE`` is unset and ``HF_TOKEN`` is ``token``. With
    ``check`` (default) a non-zero exit raises AssertionError showing the snippet's stderr.
    Returns the ``CompletedProcess`` (``stdout`` / ``stderr`` as text).
    """
    full_env = hub_env(url, token=token)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=str(cwd) if cwd is not None else str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snippet failed with exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n"
            f"--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


if __name__ == "__main__":  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Hugging Face Hub for local experiments.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    a = parser.parse_args()
    srv = HubServer(a.host, a.port)
    print(f"fake hub at {srv.start()} (Ctrl-C to stop); export HF_ENDPOINT to use it; tokens: {TOKENS}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
