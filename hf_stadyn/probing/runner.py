"""Deprecated module path: the probe runner is now the one probing engine, :mod:`hf_stadyn.probing.engine`.

``from hf_stadyn.probing.runner import probe`` keeps working for one release; import
``hf_stadyn.probing.probe`` (or ``hf_stadyn.probe``) instead.
"""

from __future__ import annotations

from .engine import ProbeResult, probe

__all__ = ["ProbeResult", "probe"]
