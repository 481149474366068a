"""defiagent: a DeFi trading agent that cannot be talked into the well-known losses."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("defiagent")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
