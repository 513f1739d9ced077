"""Modules imported on first attribute access, so a command imports only the libraries it uses.

The scientific stack (SciPy, statsmodels, scikit-learn) costs seconds to import; most commands
(``validate``, ``lint``, ``estimate``, ``report``, a cached run up to its statistics) never touch it, or
touch it late. ``stats = lazy("scipy.stats")`` at module level reads like an import and costs nothing
until ``stats.norm`` is first used.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"


def lazy(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when one of its attributes is first read."""
    return _LazyModule(name)
