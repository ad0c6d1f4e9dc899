"""Publish a BiasReport's model-card folder to a Hub model repository."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_stadyn.hub.card import _check_report, write_model_card_folder
from hf_stadyn.report import BiasReport

__all__ = ["push_report"]

logger = logging.getLogger(__name__)


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
    **card_kwargs: Any,
):
    """Upload the model-card folder of ``report`` (README.md, bias_report.json, PNGs) to a model repo.

    The folder is the one :func:`~hf_stadyn.hub.write_model_card_folder` writes, built in a temporary
    directory and sent in one commit with ``HfApi.upload_folder``. Files of the same names in the repo
    are replaced; other files (weights, config) are left alone.

    Args:
        repo_id: ``"namespace/name"`` of the model repo.
        report: the :class:`~hf_stadyn.report.BiasReport` to publish.
        token: Hub token (default: the logged-in token / ``HF_TOKEN``).
        revision: branch to commit to (default: the main branch).
        private: visibility when the repo is created.
        create_repo: create the repo if it does not exist (``exist_ok=True``).
        commit_message: default "Add static/dynamic bias report".
        validate: check the card's metadata with the Hub's validator first (only against the
            configured ``HF_ENDPOINT``, i.e. when ``endpoint`` is not given).
        endpoint: Hub URL for this call (default: ``HF_ENDPOINT`` / huggingface.co).
        scatter_layers: layers with a rho scatter figure (default: the last layer).
        **card_kwargs: passed to :func:`~hf_stadyn.hub.bias_model_card` (``base_model``, ``dataset``,
            ``license``, ``tags``, ...).

    Returns:
        ``huggingface_hub.CommitInfo`` of the upload (``.commit_url``, ``.oid``).

    Raises:
        ValueError: a malformed ``repo_id``, a bad report (no layers, NaN values: see
            :meth:`~hf_stadyn.report.BiasReport.validate`) or card arguments, or a card the Hub's
            validator rejects; all before anything is uploaded.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    report = _check_report(report)
    report.validate()  # no layers / NaN values: refused before any network call
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"repo_id {repo_id!r} is not a valid Hub repo id: {e}") from None
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="stadyn-card-") as parent:
        tmp = write_model_card_folder(report, Path(parent) / "card", scatter_layers=scatter_layers, **card_kwargs)
        if validate and endpoint is None:
            from huggingface_hub import ModelCard

            ModelCard.load(tmp / "README.md").validate(repo_type="model")
        if create_repo:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(tmp),
            repo_type="model",
            revision=revision,
            commit_message=commit_message or "Add static/dynamic bias report",
        )
    logger.info("pushed the bias report of %s to %s", report.model_id, repo_id)
    return info
