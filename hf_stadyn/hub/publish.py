"""Publish a folder (model card folder, checkpoint, Space, metric Space) to a Hub repo, safely and repeatably.

:func:`publish_folder` (``stadyn publish``) creates the repo if needed, merges our README into the repo's
(:func:`~hf_stadyn.hub.merge_card`: the user's text survives, our block is updated between markers), uploads
only the files whose content differs from the repo's (git blob sha1 for regular files, sha256 for LFS
files), tags the commit with ``revision`` and returns the commit URL; ``dry_run`` only lists the changes.
A Space folder (README front matter with ``sdk``) gets the hf-stadyn wheel built into ``wheels/`` and its
``requirements.txt`` pointed at that wheel (:mod:`hf_stadyn.hub.space`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_stadyn.hub.card import _check_report, write_model_card_folder
from hf_stadyn.report import BiasReport

from .merge import merge_card, split_front_matter, wrap_in_markers
from .sections import looks_like_hub_id

__all__ = ["PublishResult", "hub_errors", "publish_folder", "push_report"]

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints"}


@dataclass
class PublishResult:
    """What :func:`publish_folder` did (or, with ``dry_run``, would do).

    ``changes``: ``[(path, "new" | "changed")]`` uploaded (or to upload); ``unchanged``: paths already equal
    on the Hub; ``commit_url`` / ``oid``: the new commit, or the head when nothing changed (None for a dry run
    of a repo that does not exist); ``tag``: the tag created or found at that commit.
    """

    repo_id: str
    repo_type: str
    changes: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    created_repo: bool = False
    commit_url: str | None = None
    oid: str | None = None
    tag: str | None = None
    dry_run: bool = False
    readme_merged: bool = False

    @property
    def url(self) -> str | None:  # ``CommitInfo`` compatibility
        return self.commit_url

    def summary(self) -> str:
        """One line: what changed and where (``stadyn publish`` prints it)."""
        kind = {"model": "model", "dataset": "dataset", "space": "Space"}[self.repo_type]
        if self.dry_run:
            if not self.changes:
                return f"dry run: {kind} repo {self.repo_id} is up to date; nothing would be uploaded"
            listed = ", ".join(f"{p} ({why})" for p, why in self.changes)
            made = " (the repo would be created)" if self.created_repo else ""
            return f"dry run: would upload {len(self.changes)} file(s) to {kind} repo {self.repo_id}{made}: {listed}"
        tag = f", tagged {self.tag}" if self.tag else ""
        if not self.changes:
            return f"{kind} repo {self.repo_id} is up to date (nothing uploaded){tag}: {self.commit_url}"
        return f"published {len(self.changes)} file(s) to {kind} repo {self.repo_id}{tag}: {self.commit_url}"


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _local_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if p.is_file() and not rel.name.startswith(".") and p.suffix != ".pyc":
            files[rel.as_posix()] = p
    return files


def detect_repo_type(folder: Path) -> str:
    """``space`` when the README's front matter names an ``sdk``, ``dataset`` for a StaDyn-Synth export, else ``model``."""
    readme = folder / "README.md"
    if readme.is_file():
        meta, _ = split_front_matter(readme.read_text(encoding="utf-8"))
        if meta.get("sdk"):
            return "space"
    if (folder / "metadata.jsonl").is_file() and (folder / "synth.json").is_file():
        return "dataset"
    return "model"


def _check_repo_id(repo_id: Any, flag: str = "repo_id") -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{flag} must look like 'namespace/name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"{flag} {repo_id!r} is not a valid Hub repo id: {e}") from None
    if not looks_like_hub_id(repo_id):
        raise ValueError(f"{flag} {repo_id!r} is not a valid Hub repo id; use 'namespace/name'.")
    return repo_id


def publish_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    branch: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
    validate: bool = True,
    wheel: str | os.PathLike | None = None,
) -> PublishResult:
    """Publish ``folder`` to the Hub repo ``repo_id`` (see the module docstring).

    Args:
        folder: the local folder (hidden files, ``__pycache__`` and ``*.pyc`` are left out).
        repo_id: ``namespace/name``.
        repo_type: "model", "dataset" or "space" (default: :func:`detect_repo_type`).
        private: visibility when the repo is created (an existing repo keeps its visibility).
        revision: a tag to put on the published commit (e.g. ``v1.0``); an existing tag must already point
            at that commit (tags are not moved).
        branch: branch to commit to (default: the main branch).
        dry_run: list what would be uploaded; nothing is created or written.
        token, endpoint: Hub token and URL (default: the logged-in token / ``HF_TOKEN``, ``HF_ENDPOINT``).
        commit_message: default "Publish with hf-stadyn".
        validate: check the README's metadata with the Hub's validator before uploading.
        wheel: a built hf-stadyn wheel for a Space (default: built from this source checkout).

    Returns:
        :class:`PublishResult`.

    Raises:
        ValueError: a bad repo id, folder or README front matter (before any network call).
        huggingface_hub errors (``HfHubHTTPError`` ...) and network errors: see :func:`hub_errors`.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id = _check_repo_id(repo_id)
    src = Path(folder)
    if not src.is_dir():
        raise FileNotFoundError(f"folder {str(src)!r} does not exist or is not a folder; give the folder to publish.")
    if not _local_files(src):
        raise ValueError(f"folder {str(src)!r} has no files to publish.")
    repo_type = repo_type or detect_repo_type(src)
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}.")
    if revision is not None and (not isinstance(revision, str) or not revision.strip() or " " in revision):
        raise ValueError(f"revision must be a tag name like 'v1.0', got {revision!r}.")
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="stadyn-publish-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(src, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        if repo_type == "space":
            from .space import prepare_space

            prepare_space(stage, repo_id, api.endpoint, branch or "main", wheel=wheel)
            if private:
                logger.warning(
                    "a private Space cannot download its own wheel during its build (the builder sends no token); "
                    "publish %s public, or give its requirements.txt another hf-stadyn source (docs/hub.md)",
                    repo_id,
                )
        readme = stage / "README.md"
        if readme.is_file():  # our block between markers, so a later publish updates it in place
            meta, body = split_front_matter(readme.read_text(encoding="utf-8"))
            ours = readme.read_text(encoding="utf-8")
            if not _has_block(body):
                from .merge import _join

                ours = _join(meta, wrap_in_markers(body))
        result = PublishResult(repo_id, repo_type, dry_run=dry_run)
        exists, head = True, None
        try:
            info = api.repo_info(repo_id, repo_type=repo_type, revision=branch)
            head = info.sha
        except RevisionNotFoundError:
            raise ValueError(
                f"branch {branch!r} does not exist in {repo_id}; create it first or leave --branch out."
            ) from None
        except RepositoryNotFoundError:  # missing, or private to someone else (the Hub does not say which)
            exists = False
        remote: dict[str, Any] = {}
        if exists:
            for entry in api.list_repo_tree(repo_id, repo_type=repo_type, revision=head, recursive=True):
                if getattr(entry, "blob_id", None) is not None:
                    remote[entry.path] = entry
        if readme.is_file():
            existing = None
            if exists and "README.md" in remote:
                with contextlib.suppress(EntryNotFoundError):
                    existing = Path(
                        hf_hub_download(
                            repo_id, "README.md", repo_type=repo_type, revision=head, endpoint=endpoint, token=token
                        )
                    ).read_text(encoding="utf-8")
            merged = merge_card(existing, ours)
            result.readme_merged = existing is not None and merged != ours
            readme.write_text(merged, encoding="utf-8")
        for path, p in _local_files(stage).items():
            data = p.read_bytes()
            r = remote.get(path)
            if r is None:
                result.changes.append((path, "new"))
            elif (r.lfs is not None and r.lfs.sha256 == hashlib.sha256(data).hexdigest()) or (
                r.lfs is None and r.blob_id == _git_blob_sha1(data)
            ):
                result.unchanged.append(path)
            else:
                result.changes.append((path, "changed"))
        result.created_repo = not exists
        if dry_run:
            if exists:
                result.oid, result.commit_url = head, _commit_url(api.endpoint, repo_type, repo_id, head)
            return result
        if revision is not None and exists:  # a tag is never moved: refuse before committing anything
            _check_tag(api, repo_id, repo_type, revision, head, bool(result.changes))
        if validate and readme.is_file() and endpoint is None:
            from huggingface_hub import RepoCard

            RepoCard(readme.read_text(encoding="utf-8")).validate(repo_type=repo_type)
        if not exists:
            extra: dict[str, Any] = {}
            if repo_type == "space":
                sdk = split_front_matter(readme.read_text(encoding="utf-8"))[0].get("sdk") if readme.is_file() else None
                extra["space_sdk"] = sdk or "gradio"
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
        if result.changes:
            ops = [
                CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(stage / path)) for path, _ in result.changes
            ]
            commit = api.create_commit(
                repo_id,
                ops,
                commit_message=commit_message or "Publish with hf-stadyn",
                repo_type=repo_type,
                revision=branch,
            )
            result.oid, result.commit_url = commit.oid, commit.commit_url
        else:
            head = head or api.repo_info(repo_id, repo_type=repo_type, revision=branch).sha
            result.oid, result.commit_url = head, _commit_url(api.endpoint, repo_type, repo_id, head)
    if revision is not None:
        result.tag = _tag(api, repo_id, repo_type, revision, result.oid)
    logger.info("%s", result.summary())
    return result


def _has_block(body: str) -> bool:
    from .merge import has_markers

    return has_markers(body)


def _status(e: BaseException) -> int | None:
    return getattr(getattr(e, "response", None), "status_code", None)


def _commit_url(endpoint: str, repo_type: str, repo_id: str, sha: str | None) -> str | None:
    return None if sha is None else f"{endpoint.rstrip('/')}/{_PREFIX[repo_type]}{repo_id}/commit/{sha}"


def _check_tag(api: Any, repo_id: str, repo_type: str, tag: str, head: str | None, changes: bool) -> None:
    for t in api.list_repo_refs(repo_id, repo_type=repo_type).tags:
        if t.name == tag and (changes or t.target_commit != head):
            raise ValueError(
                f"tag {tag!r} of {repo_id} already points at commit {t.target_commit[:12]}, and this publish would "
                "make another; tags are not moved: choose a new --revision (nothing was uploaded)."
            )


def _tag(api: Any, repo_id: str, repo_type: str, tag: str, sha: str | None) -> str:
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    for t in refs.tags:
        if t.name == tag:
            if t.target_commit != sha:
                raise ValueError(
                    f"tag {tag!r} of {repo_id} already points at commit {t.target_commit[:12]}, not the published "
                    f"{str(sha)[:12]}; tags are not moved: choose a new --revision."
                )
            return tag
    api.create_tag(repo_id, tag=tag, revision=sha, repo_type=repo_type)
    return tag


@contextlib.contextmanager
def hub_errors(repo_id: str, action: str = "pushing to", token_flag: str = "--hub_token") -> Iterator[None]:
    """Turn Hub and network failures into one-line ``ValueError`` s that say what to do (the CLI exits 2)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    network_errors: tuple[type[BaseException], ...] = (OSError,)
    for mod in ("httpx2", "httpx"):  # huggingface_hub 2.x talks httpx2; 1.x httpx
        with contextlib.suppress(ImportError, AttributeError):
            network_errors += (importlib.import_module(mod).TransportError,)
    try:
        yield
    except OfflineModeIsEnabled:
        raise ValueError("cannot push: HF_HUB_OFFLINE is set; unset it (and check HF_ENDPOINT) to upload.") from None
    except HfHubHTTPError as e:
        status = _status(e)
        hint = {
            401: f"the token is missing or invalid: pass {token_flag} or set HF_TOKEN (a write token)",
            403: "the token may not write to this repo: use a write token of an account that owns it",
            404: "the repo or namespace was not found: check the repo id",
        }.get(int(status or 0), "check the repo id, the token and HF_ENDPOINT")
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{action} {repo_id} at {endpoint} failed ({first}); {hint}.") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
        raise
    except network_errors as e:  # connection refused, DNS failure, timeouts
        raise ValueError(
            f"cannot reach the Hub at {endpoint} to push {repo_id} ({e}); check the network and HF_ENDPOINT."
        ) from None


def push_report(
    repo_id: str,
    report: BiasReport,
    token: str | None = None,
    *,
    revision: str | None = None,
    private: bool | None = None,
    create_repo: bool = True,
    commit_message: str | None = None,
    validate: bool = True,
    endpoint: str | None = None,
    scatter_layers: Sequence[str] | None = None,
    card_repo_id: str | None = None,
    **card_kwargs: Any,
) -> PublishResult:
    """Upload the model-card folder of ``report`` (README.md, bias_report.json, PNGs) to a model repo.

    The folder is the one :func:`~hf_stadyn.hub.write_model_card_folder` writes, built in a temporary
    directory and published with :func:`publish_folder`: an existing README.md is merged (the user's text
    survives, our block is updated between markers), only changed files are uploaded, other files
    (weights, config) are left alone.

    Args:
        repo_id: ``"namespace/name"`` of the model repo.
        report: the :class:`~hf_stadyn.report.BiasReport` to publish.
        token: Hub token (default: the logged-in token / ``HF_TOKEN``).
        revision: branch to commit to (default: the main branch).
        private: visibility when the repo is created.
        create_repo: create the repo if it does not exist (otherwise a missing repo is an error).
        commit_message: default "Add static/dynamic bias report".
        validate: check the card's metadata with the Hub's validator first (only against the
            configured ``HF_ENDPOINT``, i.e. when ``endpoint`` is not given).
        endpoint: Hub URL for this call (default: ``HF_ENDPOINT`` / huggingface.co).
        scatter_layers: layers with a rho scatter figure (default: the last layer).
        card_repo_id: the repo id the card's title and usage code name (``stadyn card --push_to_hub`` passes
            ``repo_id``; default: none, the card names the report's model as a local folder would).
        **card_kwargs: passed to :func:`~hf_stadyn.hub.bias_model_card` (``base_model``, ``dataset``,
            ``license``, ``tags``, ...).

    Returns:
        :class:`PublishResult` (``.commit_url``, ``.oid``, ``.changes``).

    Raises:
        ValueError: a malformed ``repo_id``, a bad report (no layers, NaN values: see
            :meth:`~hf_stadyn.report.BiasReport.validate`) or card arguments, or a card the Hub's
            validator rejects; all before anything is uploaded.
    """
    report = _check_report(report)
    report.validate()  # no layers / NaN values: refused before any network call
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}.")
    repo_id = _check_repo_id(repo_id)
    if card_repo_id is not None:
        card_kwargs["repo_id"] = card_repo_id
    with tempfile.TemporaryDirectory(prefix="stadyn-card-") as parent:
        tmp = write_model_card_folder(report, Path(parent) / "card", scatter_layers=scatter_layers, **card_kwargs)
        if not create_repo:
            from huggingface_hub import HfApi

            HfApi(endpoint=endpoint, token=token).repo_info(repo_id)  # RepositoryNotFoundError when missing
        result = publish_folder(
            tmp,
            repo_id,
            repo_type="model",
            private=private,
            branch=revision,
            token=token,
            endpoint=endpoint,
            commit_message=commit_message or "Add static/dynamic bias report",
            validate=validate,
        )
    logger.info("pushed the bias report of %s to %s", report.model_id, repo_id)
    return result
