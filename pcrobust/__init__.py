"""pcrobust: per-timestep robustness of recurrent, brain-inspired vision models."""

from importlib.metadata import PackageNotFoundError, version

from pcrobust.hookspecs import hookimpl

try:
    __version__ = version("pcrobust")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["hookimpl", "__version__"]
