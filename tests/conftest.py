"""Test-wide settings: never touch the network, keep every cache in a temporary HF_HOME."""

from __future__ import annotations

import os
import tempfile

_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "MPLBACKEND": "Agg",
}
for _k, _v in _OFFLINE.items():
    os.environ[_k] = _v
if not os.environ.get("STADYN_TEST_KEEP_HF_HOME"):
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="stadyn-test-hf-home-")
    os.environ.pop("HF_MODULES_CACHE", None)
    os.environ.pop("HF_DATASETS_CACHE", None)
