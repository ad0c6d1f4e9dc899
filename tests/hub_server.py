"""A small Hugging Face Hub look-alike for tests (FastAPI + uvicorn on 127.0.0.1, in memory).

(One file of about 570 lines on purpose: a test server that one fixture starts in a thread; its
routes mirror the Hub's REST API one to one and read best side by side.)

It answers the routes huggingface_hub 2.x uses to create repos, upload folders / ``push_to_hub``
(regular, base64 NDJSON commits: no LFS, no xet) and to download (``hf_hub_download``,
``snapshot_download``, transformers ``from_pretrained``), for model, dataset and space repos:

    GET  /api/whoami-v2                                   the fake user "tester"
    POST /api/repos/create                                409 when the repo exists
    POST /api/validate-yaml                               400 when the card's front matter is not YAML
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]        {id, sha, siblings: [{rfilename, size, blobId}]}
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]     [{type, path, oid, size}]
    POST /api/{type}s/{ns}/{name}/paths-info/{rev}        same entries for the given paths
    POST /api/{type}s/{ns}/{name}/preupload/{rev}         uploadMode "regular" for every file
    POST /api/{type}s/{ns}/{name}/commit/{rev}            NDJSON: header, file (base64), deletedFile/Folder
    HEAD/GET /[datasets/|spaces/]{ns}/{name}/resolve/{rev}/{path}
                                                          X-Repo-Commit, ETag, Content-Length; 404s carry
                                                          X-Error-Code RepoNotFound / RevisionNotFound /
                                                          EntryNotFound

Use from tests (import the fixture into a test module or a conftest)::

    from hub_server import hub_server, run_in_hub_env          # noqa: F401  (pytest fixture)

    def test_push(hub_server):
        proc = run_in_hub_env(hub_server, '''
            from huggingface_hub import HfApi
            HfApi().create_repo("tester/x", exist_ok=True)
        ''')

``hub_server`` yields the base URL (a ``str``; its ``.hub`` attribute is the in-memory
:class:`FakeHub`, e.g. ``hub_server.hub.files("tester/x")``). Client code must run in a subprocess
(:func:`run_in_hub_env`) because huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when
it is imported. Run ``python tests/hub_server.py --port 8765`` to use it by hand.
"""

# no ``from __future__ import annotations``: FastAPI must see the real ``Request`` annotations
import base64
import hashlib
import json
import os
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

__all__ = ["FakeHub", "HubServer", "HubURL", "create_app", "hub_env", "hub_server", "run_in_hub_env"]

USER = "tester"
REPO_ROOT = Path(__file__).resolve().parents[1]
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> snapshot
    parents: dict[str, str | None] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class FakeHub:
    """In-memory repos; thread-safe. Commit ids are deterministic (hash of parent + content)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) log, for debugging tests

    # -- state -----------------------------------------------------------------------------------
    def create(self, repo_type: str, repo_id: str, private: bool = False) -> tuple[_Repo, bool]:
        with self._lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                return self.repos[key], False
            repo = _Repo(repo_type, repo_id, private)
            sha = self._commit_id(None, {}, "initial commit")
            repo.commits[sha], repo.parents[sha], repo.messages[sha] = {}, None, "initial commit"
            repo.branches["main"] = sha
            self.repos[key] = repo
            return repo, True

    def get(self, repo_type: str, repo_id: str) -> _Repo | None:
        return self.repos.get((repo_type, repo_id))

    def commit(
        self, repo: _Repo, branch: str, adds: Mapping[str, bytes], deletes: list[str], folders: list[str], message: str
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
    def _commit_id(parent: str | None, files: Mapping[str, bytes], message: str) -> str:
        h = hashlib.sha1()
        h.update((parent or "").encode())
        h.update(message.encode())
        for path in sorted(files):
            h.update(path.encode() + b"\0" + _git_blob_sha1(files[path]).encode())
        return h.hexdigest()

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Snapshot ``{path: content}`` of a repo at a revision (for assertions in tests)."""
        repo = self.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the fake hub")
        sha = repo.resolve(revision)
        if sha is None:
            raise KeyError(f"no revision {revision!r} in {repo_id!r}")
        return dict(repo.commits[sha])


def create_app(hub: FakeHub | None = None):
    """The FastAPI app serving ``hub`` (a new empty one by default)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    hub = hub if hub is not None else FakeHub()
    app = FastAPI(title="fake-hub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub

    @app.middleware("http")
    async def log_requests(request: Request, call_next):
        hub.requests.append((request.method, request.url.path))
        return await call_next(request)

    def error(status: int, code: str | None, message: str) -> Response:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def find(kind: str, ns: str, name: str) -> tuple[_Repo | None, Response | None]:
        repo_type = _TYPES.get(kind)
        if repo_type is None:
            return None, error(404, None, f"unknown repo type {kind!r}")
        repo = hub.get(repo_type, f"{ns}/{name}")
        if repo is None:
            return None, error(404, "RepoNotFound", f"Repository {ns}/{name} not found")
        return repo, None

    def entries(files: Mapping[str, bytes], prefix: str = "", recursive: bool = True) -> list[dict[str, Any]]:
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
            data = files[path]
            out.append({"type": "file", "path": path, "oid": _git_blob_sha1(data), "size": len(data)})
        out += [
            {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
            for d in sorted(dirs)
        ]
        return out

    def info(repo: _Repo, sha: str) -> dict[str, Any]:
        files = repo.commits[sha]
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": "2024-01-01T00:00:00.000Z",
            "createdAt": "2024-01-01T00:00:00.000Z",
            "siblings": [
                {"rfilename": p, "size": len(d), "blobId": _git_blob_sha1(d)} for p, d in sorted(files.items())
            ],
        }

    @app.get("/api/whoami-v2")
    async def whoami(request: Request):
        if not request.headers.get("authorization"):
            return error(401, None, "Invalid credentials in Authorization header")
        return {
            "type": "user",
            "id": "0" * 24,
            "name": USER,
            "fullname": "Test User",
            "email": "tester@example.invalid",
            "emailVerified": True,
            "canPay": False,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}},
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
        repo_id = f"{body.get('organization') or USER}/{name}"
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
    async def repo_info(kind: str, ns: str, name: str):
        repo, err = find(kind, ns, name)
        return err or info(repo, repo.branches["main"])

    @app.get("/api/{kind}/{ns}/{name}/revision/{revision:path}")
    async def repo_info_rev(kind: str, ns: str, name: str, revision: str):
        repo, err = find(kind, ns, name)
        if err:
            return err
        sha = repo.resolve(revision)
        if sha is None:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return info(repo, sha)

    @app.get("/api/{kind}/{ns}/{name}/tree/{revision}")
    @app.get("/api/{kind}/{ns}/{name}/tree/{revision}/{path:path}")
    async def tree(kind: str, ns: str, name: str, revision: str, path: str = "", recursive: bool = False):
        repo, err = find(kind, ns, name)
        if err:
            return err
        sha = repo.resolve(revision)
        if sha is None:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        if path and path in files:
            return error(400, None, f"{path} is a file, not a folder")
        found = entries(files, path, recursive)
        if path and not found:
            return error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        return found

    @app.post("/api/{kind}/{ns}/{name}/paths-info/{revision}")
    async def paths_info(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, err = find(kind, ns, name)
        if err:
            return err
        sha = repo.resolve(revision)
        if sha is None:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            paths = (await request.json()).get("paths", [])
        else:
            paths = (await request.form()).getlist("paths")
        files = repo.commits[sha]
        out = []
        for p in paths:
            if p in files:
                out += [e for e in entries({p: files[p]})]
            elif any(f.startswith(p.rstrip("/") + "/") for f in files):
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0})
        return out

    @app.post("/api/{kind}/{ns}/{name}/preupload/{revision}")
    async def preupload(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, err = find(kind, ns, name)
        if err:
            return err
        sha = repo.resolve(revision)
        files = repo.commits[sha] if sha else {}
        body = await request.json()
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": _git_blob_sha1(files[f["path"]]) if f["path"] in files else None,
                }
                for f in body.get("files", [])
            ],
            "commitOid": sha,
        }

    @app.post("/api/{kind}/{ns}/{name}/commit/{revision}")
    async def commit(kind: str, ns: str, name: str, revision: str, request: Request):
        repo, err = find(kind, ns, name)
        if err:
            return err
        if revision not in repo.branches:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        adds: dict[str, bytes] = {}
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
                adds[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deletes.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            else:
                return error(400, None, f"the fake hub supports regular uploads only, not {key!r}")
        sha = hub.commit(repo, revision, adds, deletes, folders, message)
        base = str(request.base_url).rstrip("/")
        return {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{base}/{_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}",
            "pullRequestUrl": None,
        }

    def resolve_file(repo_type: str, ns: str, name: str, revision: str, path: str, head: bool) -> Response:
        repo = hub.get(repo_type, f"{ns}/{name}")
        if repo is None:
            return error(404, "RepoNotFound", f"Repository {ns}/{name} not found")
        sha = repo.resolve(revision)
        if sha is None:
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        data = repo.commits[sha].get(path)
        if data is None:
            r = error(404, "EntryNotFound", f"{path} does not exist on {revision}")
            r.headers["X-Repo-Commit"] = sha
            return r
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{_git_blob_sha1(data)}"',
            "Content-Length": str(len(data)),
            "Accept-Ranges": "bytes",
        }
        if head:
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        return Response(content=data, status_code=200, headers=headers, media_type="application/octet-stream")

    for prefix, repo_type in (("", "model"), ("/datasets", "dataset"), ("/spaces", "space")):

        def make(repo_type: str = repo_type):
            async def get_file(ns: str, name: str, revision: str, path: str):
                return resolve_file(repo_type, ns, name, revision, path, head=False)

            async def head_file(ns: str, name: str, revision: str, path: str):
                return resolve_file(repo_type, ns, name, revision, path, head=True)

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
    """Run the fake hub with uvicorn in a daemon thread on 127.0.0.1 (a free port by default).

    Example:
        >>> with HubServer() as url:          # doctest: +SKIP
        ...     run_in_hub_env(url, "from huggingface_hub import whoami; print(whoami()['name'])")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.hub = FakeHub()
        self._server = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> HubURL:
        u = HubURL(f"http://{self.host}:{self.port}")
        u.hub = self.hub
        return u

    def start(self, timeout: float = 30.0) -> HubURL:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(create_app(self.hub), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
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
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> HubURL:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubURL]:
    """Start the fake hub on a free port for the test session; yields its URL (``.hub`` = state)."""
    pytest.importorskip("fastapi", reason="the fake hub needs fastapi (pip install hf-stadyn[test])")
    pytest.importorskip("uvicorn", reason="the fake hub needs uvicorn (pip install hf-stadyn[test])")
    with HubServer() as url:
        yield url


def hub_env(url: str, token: str = "hf_fake", hf_home: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a client process talking to the fake hub at ``url``.

    Offline switches are removed (the endpoint is local), telemetry and progress bars are off, the
    cache lives in ``hf_home`` (a new temporary folder by default) and the repo root is on PYTHONPATH.
    """
    env = dict(os.environ)
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(k, None)
    env.update(
        HF_ENDPOINT=str(url),
        HF_TOKEN=token,
        HF_HOME=hf_home or tempfile.mkdtemp(prefix="stadyn-fakehub-home-"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_XET="1",
        GRADIO_ANALYTICS_ENABLED="False",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]),
    )
    for k in ("HF_MODULES_CACHE", "HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_in_hub_env(
    url: str,
    code: str,
    *,
    token: str = "hf_fake",
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
    print(f"fake hub at {srv.start()} (Ctrl-C to stop); export HF_ENDPOINT to use it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
