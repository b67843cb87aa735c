"""Entry-point helpers: the ``catalogue``, ``hosted_api`` and ``objective`` config nodes as
typed objects, checked before any slow step so that bad input fails in seconds.

``catalogue`` maps option names to ``{hardware: <a conf/hardware node>, workers_per_replica:
null (= vCPUs), kinds: null (= any stage) or [substrings of stage kinds], stages: null or
[stage names]}``; ``hosted_api`` maps a stage name to :class:`~recsys.cost.HostedAPI` fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recsys.cost import HostedAPI
from recsys.errors import ConfigError
from recsys.plan import HardwareOption
from recsys.sim.hardware import Hardware
from recsys.sweep import Objective

_OPTION_KEYS = {"hardware", "workers_per_replica", "kinds", "stages"}


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def objective(cfg: DictConfig) -> Objective:
    """The ``objective`` node (absent or null: p99, as before sweeps had objectives)."""
    return Objective.from_dict(_plain(cfg.get("objective")))


def hosted_apis(cfg: DictConfig, stages: Sequence[str]) -> dict[str, HostedAPI]:
    """``hosted_api.<stage>`` -> the API serving that stage."""
    node = _plain(cfg.get("hosted_api")) or {}
    unknown = set(node) - set(stages)
    if unknown:
        raise ConfigError(f"hosted_api names unknown stage(s) {sorted(unknown)}; stages: {stages}")
    apis = {}
    for stage, fields in node.items():
        if not isinstance(fields, Mapping):
            raise ConfigError(f"hosted_api.{stage} must be a mapping of HostedAPI fields")
        try:
            apis[stage] = HostedAPI(**fields)
        except TypeError as exc:
            raise ConfigError(f"hosted_api.{stage}: {exc}") from None
    return apis


def priced_hardware(node: Any, where: str, build: Callable[[Any, str], Any]) -> Hardware:
    """The hardware of config node ``node`` (``where`` names it in errors), refusing one
    without a price before instantiating it."""
    if node is None:
        raise ConfigError(f"{where} needs a hardware node (e.g. from conf/hardware)")
    shown = node.get("name", where) if hasattr(node, "get") else where
    price_missing = (
        OmegaConf.is_missing(node, "price_per_hour_usd")
        if isinstance(node, DictConfig)
        else "price_per_hour_usd" not in node
    )
    if price_missing or node.get("price_per_hour_usd") is None:
        raise ConfigError(
            f"{where}: price missing for hardware {shown!r} (set price_per_hour_usd, with "
            "price_date and price_source)"
        )
    hardware = build(node, where)
    if not isinstance(hardware, Hardware):
        raise ConfigError(f"{where} must build a recsys.sim.hardware.Hardware")
    return hardware


def catalogue(
    cfg: DictConfig,
    pipeline: Sequence[Mapping[str, Any]],
    build: Callable[[Any, str], Any],
) -> list[list[HardwareOption]] | None:
    """Each stage's hardware options (None when no catalogue is configured).

    ``pipeline`` is ``Pipeline.describe()``; ``build`` instantiates a config node (the entry
    point's ``build``). ``ConfigError`` for a missing price, an unknown key, or a stage that
    no option may serve.
    """
    node = cfg.get("catalogue")
    if not node:
        return None
    entries = []
    for name, entry in node.items():
        unknown = set(entry or {}) - _OPTION_KEYS
        if unknown:
            raise ConfigError(
                f"catalogue.{name}: unknown key(s) {sorted(unknown)}; valid: "
                f"{', '.join(sorted(_OPTION_KEYS))}"
            )
        hardware = priced_hardware((entry or {}).get("hardware"), f"catalogue.{name}", build)
        option = HardwareOption(hardware, entry.get("workers_per_replica"))
        kinds = list(entry.get("kinds") or [])
        stages = list(entry.get("stages") or [])
        entries.append((option, kinds, stages))
    options = []
    for stage in pipeline:
        allowed = [
            option
            for option, kinds, stages in entries
            if (not kinds or any(k in str(stage["kind"]) for k in kinds))
            and (not stages or stage["stage"] in stages)
        ]
        if not allowed:
            raise ConfigError(
                f"no catalogue option may serve stage {stage['stage']!r} ({stage['kind']}); "
                "check the catalogue's kinds/stages filters"
            )
        options.append(allowed)
    return options
