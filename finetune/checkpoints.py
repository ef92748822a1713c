"""Fine-tuning checkpoints (detection and segmentation) that survive a kill, and that load whole or not at all.

mmengine 0.10.7 writes a checkpoint with `LocalBackend.put` (`open(path, 'wb').write(...)`, no fsync)
and then `<work_dir>/last_checkpoint` the same way; its `CheckpointHook` even deletes the oldest kept
checkpoint *before* writing the new one. A kill or power loss during the write can so leave a truncated
`iter_N.pth`, or a `last_checkpoint` naming a file that is missing or truncated, and `--resume` then
ends in a traceback. Two remedies, both through mmengine's supported extension points:

- `use_atomic_checkpoints(cfg)` registers `AtomicLocalBackend` (mmengine's `register_backend`) and
  points `default_hooks.checkpoint.backend_args` at it: every checkpoint the hook writes goes through
  `etcore.checkpoint_io.save_atomic` (temporary file, fsync, rename), so `iter_N.pth` is whole or absent.
- `resume_checkpoint(work_dir)` reads `last_checkpoint` as mmengine would, checks the file it names with
  the safe loader, and otherwise falls back to the most recently written intact `iter_*/epoch_*.pth` in the work dir.

`load_model_checkpoint` loads a trained model for testing strictly (every key, one line when it does not
fit), and `training_facts` reads back the seed and backbone checkpoint its training run used.
"""

from __future__ import annotations

import os
import os.path as osp
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from mmengine.config import Config
from mmengine.fileio import LocalBackend, register_backend

from etcore.checkpoint_io import load_checkpoint_file, save_atomic
from etcore.errors import UserInputError

BACKEND_NAME = "etdet_atomic_local"
_CHECKPOINT_NAME = re.compile(r"(?:iter|epoch)_(\d+)\.pth")


def _write_bytes(data: bytes, tmp: str) -> None:
    with open(tmp, "wb") as handle:
        handle.write(data)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (whole new file or the old state)."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        save_atomic(obj, filepath, writer=_write_bytes)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        save_atomic(obj.encode(encoding), filepath, writer=_write_bytes)


def use_atomic_checkpoints(cfg: Any) -> None:
    """Route the config's CheckpointHook writes through `AtomicLocalBackend` (local work dirs only).

    Left alone when the config already chose a backend (e.g. a cloud one) for its checkpoints.
    """
    register_backend(BACKEND_NAME, AtomicLocalBackend, force=True)
    hook = (cfg.get("default_hooks") or {}).get("checkpoint")
    if not isinstance(hook, dict) or hook.get("backend_args") or hook.get("file_client_args"):
        return
    out_dir = hook.get("out_dir") or ""
    if "://" in str(out_dir):
        return
    hook["backend_args"] = {"backend": BACKEND_NAME}


def _intact(path: str) -> str | None:
    """None if `path` loads with the safe loader, else why not (one line)."""
    try:
        load_checkpoint_file(path)
    except UserInputError as err:
        return str(err)
    return None


def resume_checkpoint(work_dir: str | os.PathLike) -> tuple[str | None, str | None]:
    """(checkpoint to resume from, note for the log) for `--resume` without a path.

    (None, None) when `last_checkpoint` names an intact file (mmengine's own auto-resume then takes it,
    as it would without us) or when the work dir holds no checkpoint (mmengine starts afresh).
    A path when `last_checkpoint` is missing, empty, or names a missing/truncated file but an older
    intact checkpoint exists. Raises `UserInputError` when checkpoints exist and none is intact.
    """
    work_dir = os.fspath(work_dir)
    pointer = osp.join(work_dir, "last_checkpoint")
    named = ""
    if osp.isfile(pointer):
        with open(pointer, encoding="utf-8") as handle:
            named = handle.read().strip()
        if named and osp.isfile(named) and _intact(named) is None:
            return None, None
    folders = {work_dir} | ({osp.dirname(named)} if named else set())
    # newest written first: an epoch-based run holds epoch_M.pth and the iter_N.pth of a stop inside an epoch,
    # whose numbers do not compare; the number orders files written within the same clock tick
    candidates = sorted(
        ((os.stat(path).st_mtime_ns, int(match.group(1))), path)
        for folder in folders
        if osp.isdir(folder)
        for name in os.listdir(folder)
        if (match := _CHECKPOINT_NAME.fullmatch(name)) and osp.isfile(path := osp.join(folder, name))
    )
    problem = (
        f"last_checkpoint names {named}, which is missing or unreadable"
        if named
        else "the work dir has no (or an empty) last_checkpoint"
    )
    for _, candidate in reversed(candidates):
        if candidate != named and _intact(candidate) is None:
            return candidate, f"{problem}; resuming from {candidate}, the newest intact checkpoint"
    if candidates or named:
        raise UserInputError(
            f"--resume: {problem} and no intact checkpoint is left in {work_dir}: "
            "start again in a new --work-dir (or without --resume)"
        )
    return None, None


def load_model_checkpoint(runner: Any, checkpoint: str) -> dict:
    """Load a detector's or segmentor's weights strictly (a checkpoint of another model is an error, not a warning).

    Uses the runner's own loader, so `runner.test()` does not read the file again.
    """
    try:
        return runner.load_checkpoint(checkpoint, map_location="cpu", strict=True)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(
            f"checkpoint {checkpoint} is corrupt or not a plain checkpoint ({reason}): "
            "give a file written by tools/train.py"
        ) from None
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        if "PytorchStreamReader" in detail:  # torch's zip reader: a truncated/damaged file, not another model
            raise UserInputError(
                f"checkpoint {checkpoint} is corrupt or truncated ({detail[:120]}...): "
                "give an intact file written by tools/train.py"
            ) from None
        raise UserInputError(
            f"checkpoint {checkpoint} does not fit config {runner.cfg.filename} ({detail}): "
            "give the checkpoint trained with this config"
        ) from None


def training_facts(checkpoint: dict, cfg: Config) -> tuple[int | None, str | None]:
    """(seed, pretrained backbone checkpoint) of the run that wrote `checkpoint`.

    mmengine stores the seed and the training config in the checkpoint's meta, so --cfg-options given
    to tools/train.py count even when tools/test.py is called without them; the test config is the
    fallback for checkpoints without that meta.
    """
    meta = checkpoint.get("meta") or {}
    seed = meta.get("seed", (cfg.get("randomness") or {}).get("seed"))
    pretrained = (cfg.get("model", {}).get("backbone") or {}).get("checkpoint")
    if isinstance(meta.get("cfg"), str):
        try:
            train_cfg = Config.fromstring(meta["cfg"], file_format=".py")
            pretrained = (train_cfg.get("model", {}).get("backbone") or {}).get("checkpoint")
        except Exception:  # noqa: BLE001  (an unreadable stored config only loses this detail)
            pass
    return (None if seed is None else int(seed)), pretrained


def training_log_dir(checkpoint: dict, checkpoint_path: str) -> str | None:
    """The log folder of the run that wrote `checkpoint`, `<work dir>/<timestamp>/`, when it is still there.

    mmengine names a run `<config name>_<timestamp>` (the checkpoint meta's `experiment_name`) and logs into
    `<work dir>/<timestamp>/` (`<timestamp>.log`, `vis_data/scalars.json`, TensorBoard event files); the
    checkpoints sit in the work dir itself.
    """
    name = (checkpoint.get("meta") or {}).get("experiment_name")
    match = re.search(r"(\d{8}_\d{6})$", name) if isinstance(name, str) else None
    if match is None:
        return None
    folder = osp.join(osp.dirname(checkpoint_path), match.group(1))
    return folder if osp.isdir(folder) else None
