"""Register hf_stadyn's model types with the transformers Auto classes as soon as transformers is imported.

``import hf_stadyn`` is lazy (the CLI parser and ``stadyn --help`` must not import torch or
transformers), yet after it ``transformers.AutoConfig.from_pretrained(<an AVOS folder>)`` must work
without ``trust_remote_code``. :func:`install` reconciles the two at no cost while transformers is not
imported:

- transformers already imported: register now (imports :mod:`hf_stadyn.models`).
- otherwise: put a finder at the front of ``sys.meta_path`` that only answers for the top-level
  ``transformers`` package: it wraps that package's loader so that, right after ``transformers`` has
  executed, :func:`hf_stadyn.models.registry.register_auto_classes` runs (through ``import
  hf_stadyn.models``), then takes itself out of ``sys.meta_path``.

Import cycles: registration imports :mod:`hf_stadyn.models`, whose modules import transformers. If
transformers is first imported *by* one of hf_stadyn's own modules while it is initialising (e.g.
``from hf_stadyn.models import AVOSModel`` in a fresh process), registering at that moment would read
half-initialised modules, so it is postponed: :mod:`hf_stadyn.models` registers at the end of its own
import, and otherwise the registration runs when the outermost hf_stadyn module being imported has
finished executing (until registration the finder also wraps the loaders of hf_stadyn's modules). It never runs in the middle of another package's import: retrying at "the next import of
any module" did, and left that package half-initialised (numpy.random without ``mtrand``, scipy
without ``_lib``). Registration errors never break ``import transformers``: they are logged.

Usage (in ``hf_stadyn/__init__.py``, after ``__getattr__`` is defined)::

    from hf_stadyn import _autoregister as _ar; _ar.install()
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["install", "installed", "registered"]

logger = logging.getLogger(__name__)

_TRIGGER = "transformers"
_lock = threading.RLock()
_finder: _TransformersImportHook | None = None
_busy = False  # a registration is running (its own imports must not re-enter it)


def registered() -> bool:
    """Whether the Auto classes know hf_stadyn's model types in this process."""
    registry = sys.modules.get("hf_stadyn.models.registry")
    return bool(registry is not None and getattr(registry, "auto_classes_registered", lambda: False)())


def installed() -> bool:
    """Whether the import hook is waiting in ``sys.meta_path``."""
    return _finder is not None and _finder in sys.meta_path


def _initialising(module: ModuleType | None) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _hf_stadyn_initialising() -> bool:
    """Whether one of hf_stadyn's modules (not the top-level package, not this one) is mid-import."""
    names = [name for name in list(sys.modules) if name.startswith("hf_stadyn.") and name != __name__]
    return any(_initialising(sys.modules.get(name)) for name in names)


def _register() -> bool:
    """Register now if that is safe; True when registration has happened (now or before)."""
    global _busy
    if registered():
        return True
    if _busy:
        return False
    if _initialising(sys.modules.get("hf_stadyn.models")):
        return False  # the common case, checked first: hf_stadyn.models registers at the end of its import
    if _initialising(sys.modules.get(_TRIGGER)) or _hf_stadyn_initialising():
        return False
    _busy = True
    try:
        import hf_stadyn.models  # noqa: F401  (its import registers every entry of the registry)
        from hf_stadyn.models.registry import register_auto_classes

        register_auto_classes()
    except Exception:  # never break the user's `import transformers`
        logger.warning("hf_stadyn could not register its models with the transformers Auto classes", exc_info=True)
    finally:
        _busy = False
    return True  # done, or failed for good: do not retry on every import


def _remove_finder() -> None:
    global _finder
    with _lock:
        if _finder is not None and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _finder = None


class _LoaderWrapper(importlib.abc.Loader):
    """The real loader of ``transformers`` (or, while a registration is pending, of an hf_stadyn module);
    runs the registration once the module has executed."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        # from here on the module is the real one: give it its own loader back
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        if module.__name__ != _TRIGGER and _TRIGGER not in sys.modules:
            return  # an hf_stadyn module that did not bring transformers in: nothing to register yet
        # the import system marks the module as initialising until exec_module returns
        spec = module.__spec__
        was = getattr(spec, "_initializing", False)
        try:
            if spec is not None:
                spec._initializing = False  # type: ignore[attr-defined]  # importlib's private flag, not in typeshed
            done = _register()
        finally:
            if spec is not None:
                spec._initializing = was  # type: ignore[attr-defined]  # as above
        if done:
            _remove_finder()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _TransformersImportHook(importlib.abc.MetaPathFinder):
    """``sys.meta_path`` finder: wraps the loader of ``transformers``; retries a postponed registration."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if _busy:
            return None
        # transformers itself, and hf_stadyn's own modules: at the end of the outermost one, a registration
        # postponed because transformers came in while hf_stadyn was initialising runs (never inside the
        # import of another package, which the registration's own imports could find half-initialised)
        if fullname != _TRIGGER and not fullname.startswith("hf_stadyn."):
            return None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _LoaderWrapper(spec.loader)
                return spec
        return None


def install() -> None:
    """Make sure hf_stadyn's model types get registered with the Auto classes; idempotent, thread-safe.

    Registers now when transformers is already imported, else when it is (see the module docstring).
    Costs one ``sys.meta_path`` entry and no imports until then.
    """
    global _finder
    with _lock:
        if registered():
            return
        if _TRIGGER in sys.modules and _register():
            return
        if _finder is None:
            _finder = _TransformersImportHook()
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
