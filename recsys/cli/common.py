"""What every entry point shares: error reporting, instantiation, run-directory helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recsys.errors import ConfigError, RecsysError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# Hydra instantiates only these targets: recsys itself, plus trusted packages the user names
# (comma-separated prefixes, e.g. "mycompany.rankers.*") in RECSYS_TRUSTED_TARGETS.
TRUSTED_TARGETS = ["recsys.*"]
EXIT_USER_ERROR = 2

log = logging.getLogger("recsys")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause (Hydra wraps errors raised inside ``_target_`` constructors)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad input into one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except RecsysError as exc:
        _fail(str(exc))
    except InstantiationException as exc:
        cause = _root_cause(exc)
        if isinstance(cause, RecsysError):
            _fail(str(cause))
        _fail(f"invalid configuration: {' '.join(str(cause).split())}")
    except OmegaConfBaseException as exc:
        _fail(f"invalid configuration: {' '.join(str(exc).split())}")


def _fail(message: str) -> None:
    print(f"recsys: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def build(node: Any, what: str) -> Any:
    """``hydra.utils.instantiate`` with a named, one-line error for a bad option."""
    if node is None:
        raise ConfigError(f"{what} is not configured")
    try:
        return instantiate(node, _convert_="all", _execution_whitelist_=trusted_targets())
    except RecsysError:
        raise
    except (InstantiationException, TypeError, ValueError, OmegaConfBaseException) as exc:
        # Hydra wraps errors of the target's constructor; a TypeError is a wrong keyword.
        cause = _root_cause(exc)
        if isinstance(cause, RecsysError):
            raise cause from None
        message = " ".join(str(cause).split("full_key:")[0].split())
        raise ConfigError(f"{what}: {message}") from None


def trusted_targets() -> list[str]:
    """Target prefixes Hydra may call: ``recsys.*`` and those in ``RECSYS_TRUSTED_TARGETS``."""
    extra = os.environ.get("RECSYS_TRUSTED_TARGETS", "")
    return TRUSTED_TARGETS + [t.strip() for t in extra.split(",") if t.strip()]


def run_dir() -> Path:
    """The Hydra run (or multirun job) directory, or the current directory outside Hydra."""
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path.cwd()


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (for result.json)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def positive(value: Any, name: str) -> None:
    """``ConfigError`` unless ``value`` is a positive number."""
    if value is None or float(value) <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
