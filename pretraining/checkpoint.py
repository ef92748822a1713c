"""The pretraining work dir's files (docs/FORMATS.md): last.pth, final.pth, log.jsonl, curriculum.json.

Writes go through `etcore.checkpoint_io.save_atomic`, reads through `load_checkpoint_file`. A resume or
a finished run is only accepted when it was made with the same recipe (all settings except those in
`config.RESUMABLE_CHANGES`); otherwise the user gets one line naming the differing settings.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from etcore.checkpoint_io import load_checkpoint_file, save_atomic, write_text_atomic
from etcore.errors import UserInputError
from etcore.formats import PRETRAIN_CURRICULUM as CURRICULUM
from etcore.formats import PRETRAIN_FINAL as FINAL
from etcore.formats import PRETRAIN_FORMAT as FORMAT
from etcore.formats import PRETRAIN_LAST as LAST
from etcore.formats import PRETRAIN_LOG as LOG
from pretraining.config import RESUMABLE_CHANGES, PretrainConfig

SETTING_DEFAULTS = {f.name: f.default for f in fields(PretrainConfig) if f.default is not MISSING}


def run_signature(config_dict: Mapping[str, Any], also: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The settings that define what is trained (those a resume must not change), plus `also`."""
    return {k: v for k, v in config_dict.items() if k not in RESUMABLE_CHANGES or k in also}


def signature_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], also: frozenset[str] = frozenset()
) -> list[str]:
    """`name: saved -> current` for every run-defining setting (and every one in `also`) that differs.

    A setting the saved run predates (e.g. `hflip`) counts as its default, which is what that run did.
    """
    saved = {**{k: v for k, v in SETTING_DEFAULTS.items() if k not in saved}, **saved}
    keys = sorted(set(run_signature(saved, also)) | set(run_signature(current, also)))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with tensors detached on the CPU (portable checkpoints, no 'module.' prefix)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_checkpoint(payload: dict[str, Any], path: Path, on_write: Callable[[], None] | None = None) -> Path:
    """Atomically write `payload`; `on_write` runs after the temporary file is complete (fault injection)."""

    def writer(obj: Any, tmp: str) -> None:
        torch.save(obj, tmp)
        if on_write is not None:
            on_write()

    return save_atomic(payload, path, writer=writer)


def remove_stale_temporaries(work_dir: Path) -> list[Path]:
    """Delete temporary files a killed save left behind (`.last.pth.<random>.tmp`)."""
    removed = []
    for pattern in (f".{LAST}.*.tmp", f".{FINAL}.*.tmp", f".{LOG}.*.tmp", f".{CURRICULUM}.*.tmp"):
        for tmp in work_dir.glob(pattern):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def load_resume_state(path: Path, config_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Read a `last.pth` and check that it continues the requested run."""
    state = load_checkpoint_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT or "resume" not in state:
        raise UserInputError(
            f"--resume {path} is not a pretraining resume checkpoint ({FORMAT} with a 'resume' "
            "entry): point --resume at a W/last.pth written by tools/pretrain.py"
        )
    differences = signature_differences(state["resume"]["config"], config_dict)
    if differences:
        raise UserInputError(
            f"--resume {path} was trained with other settings ({'; '.join(differences)}): "
            "resume with the same settings, or start a new run in another --work-dir"
        )
    return state


def finished_run(work_dir: Path, config_dict: Mapping[str, Any]) -> dict[str, Any] | None:
    """Provenance of a complete W/final.pth made by this very recipe; None when there is none.

    A final.pth of a different recipe is refused (it would be silently mixed up with this one).
    """
    path = work_dir / FINAL
    if not path.is_file():
        return None
    state = load_checkpoint_file(path)
    complete = (
        isinstance(state, dict)
        and state.get("format") == FORMAT
        and isinstance(state.get("model"), dict)
        and isinstance(state.get("provenance"), dict)
        and "recipe" in state["provenance"]
    )
    if not complete:
        raise UserInputError(
            f"{path} exists but is not a complete pretraining result: delete it (and --resume "
            "from last.pth) or use another --work-dir"
        )
    # A resume may follow moved data; reusing a finished result must not: the data folder counts here.
    differences = signature_differences(state["provenance"]["recipe"], config_dict, also=frozenset({"data"}))
    if differences:
        raise UserInputError(
            f"{path} holds a finished run with other settings ({'; '.join(differences)}): "
            "use another --work-dir, or delete it to retrain"
        )
    return state["provenance"]


def package_versions() -> dict[str, str]:
    import numpy
    import timm
    import torchvision

    return {
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "timm": str(timm.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    """HEAD of the repository holding this package, or None outside git."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def trim_log(path: Path, before_epoch: int) -> None:
    """Keep only the log lines of epochs before `before_epoch` (a resume redoes the later ones)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["epoch"] < before_epoch:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill: drop it
    write_text_atomic("".join(f"{line}\n" for line in kept), path)


def append_log(path: Path, record: Mapping[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(record)) + "\n")
        handle.flush()
