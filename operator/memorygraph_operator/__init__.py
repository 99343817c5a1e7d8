"""The MemoryGraph operator: runs MemoryGraph and Plugin resources as data planes (kopf).

The version is the installed distribution's, whose one source is ``pyproject.toml``: the data
plane reports the same, and the operator's default data-plane image is tagged with it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("memorygraph")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
