"""archsim: simulate ML workloads on accelerator designs and explore their design space."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("archsim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
