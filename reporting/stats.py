"""Numbers of a comparison table: mean +- std over seeds, and which config keys two runs differ in."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from reporting.runs import Run

# Config keys that may differ between the two runs of a pair (plus every `seed` and `randomness.*` key).
PAIRING_IGNORED_KEYS = ("model.backbone.checkpoint", "model.backbone.init_cfg.checkpoint", "work_dir")


@dataclass(frozen=True)
class Stat:
    """A table number: mean over n values, sample std when n >= 2, `signed` for deltas."""

    mean: float
    std: float | None = None
    n: int = 1
    signed: bool = False


def summarize(values: Sequence[float | None], signed: bool = False) -> Stat | None:
    """Mean +- sample std of the values that exist; None when none does."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) >= 2 else None
    return Stat(statistics.fmean(present), std, len(present), signed)


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested config (list items by index) -> leaf values."""
    if isinstance(config, dict):
        items = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _pairing_ignores(key: str) -> bool:
    parts = key.split(".")
    return (
        any(key == k or key.startswith(k + ".") for k in PAIRING_IGNORED_KEYS)
        or parts[0] == "randomness"
        or parts[-1] == "seed"
    )


def config_differences(first: Run, second: Run) -> list[str]:
    """Config keys in which two runs differ beyond the checkpoint, the work dir and the seed."""
    if first.resolved_config is None or second.resolved_config is None:
        return ["resolved_config (missing)"]

    def normalised(run: Run) -> dict[str, Any]:
        work_dir = run.resolved_config.get("work_dir")
        flat = flatten_config(run.resolved_config)
        if isinstance(work_dir, str) and work_dir:  # paths inside the run's own work dir are the work dir
            flat = {k: v.replace(work_dir, "{work_dir}") if isinstance(v, str) else v for k, v in flat.items()}
        return {k: v for k, v in flat.items() if not _pairing_ignores(k)}

    a, b = normalised(first), normalised(second)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))
