"""etcore.compat: mmengine checkpoints load under torch's weights_only default, and nothing else does."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import torch
from torch import nn
from torch.utils.data import Dataset

import etcore.compat  # noqa: F401  (installs the allowlist)
from etcore.checkpoint_io import load_checkpoint_file
from etcore.errors import UserInputError


class _Points(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        return dict(x=torch.tensor([float(i), 1.0]), y=torch.tensor(float(i)))


def _tiny_model():
    from mmengine.model import BaseModel

    class Line(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x, y=None, mode="tensor"):
            x = torch.stack(x) if isinstance(x, list) else x
            out = self.fc(x).squeeze(-1)
            if mode == "loss":
                y = torch.stack(y) if isinstance(y, list) else y
                return {"loss": ((out - y) ** 2).mean()}
            return out

    return Line()


def _runner(work_dir: Path, max_epochs: int, resume: bool):
    from mmengine.runner import Runner

    return Runner(
        model=_tiny_model(),
        work_dir=str(work_dir),
        randomness=dict(seed=0),
        train_dataloader=dict(
            dataset=_Points(),
            batch_size=4,
            collate_fn=dict(type="default_collate"),
            sampler=dict(type="DefaultSampler", shuffle=True),
        ),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            logger=dict(type="LoggerHook", interval=1), checkpoint=dict(type="CheckpointHook", interval=1)
        ),
        resume=resume,
    )


@pytest.mark.slow
@pytest.mark.subprocess
def test_runner_checkpoint_needs_the_allowlist_and_resumes_with_it(tmp_path: Path) -> None:
    _runner(tmp_path, max_epochs=2, resume=False).train()
    ckpt = tmp_path / "epoch_2.pth"
    assert "message_hub" in torch.load(ckpt, weights_only=True)

    # Without etcore, torch 2.14's default safe loading refuses mmengine's own checkpoint.
    plain = subprocess.run(
        [sys.executable, "-c", f"import torch; torch.load({str(ckpt)!r})"], capture_output=True, text=True
    )
    assert plain.returncode != 0 and "Weights only load failed" in plain.stderr
    # With the allowlist, a fresh process (no HistoryBuffer built yet) reads it with safe loading on.
    fresh = subprocess.run(
        [sys.executable, "-c", f"import etcore.compat, torch; torch.load({str(ckpt)!r})"],
        capture_output=True,
        text=True,
    )
    assert fresh.returncode == 0, fresh.stderr[-500:]

    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    resumed = _runner(tmp_path, max_epochs=3, resume=True)
    resumed.train()
    assert resumed.epoch == 3 and resumed.iter == 6  # continued from epoch 2 / iter 4, did not restart
    assert (tmp_path / "epoch_3.pth").is_file()
    after = torch.load(tmp_path / "epoch_3.pth", weights_only=True)["state_dict"]
    assert not torch.equal(after["fc.weight"], saved["fc.weight"])  # it trained on from the resumed weights


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _getattr_escape_pickle() -> bytes:
    """A protocol-2 pickle that calls getattr(HistoryBuffer, '__init__'): the first step of an escape."""
    name = b"__init__"
    return (
        b"\x80\x02c__builtin__\ngetattr\n"
        b"cmmengine.logging.history_buffer\nHistoryBuffer\n"
        b"X" + len(name).to_bytes(4, "little") + name + b"\x86R."
    )


def _as_torch_file(path: Path, pickled: bytes) -> None:
    """Write `pickled` as the data.pkl of a real torch zip checkpoint."""
    real = path.with_suffix(".real")
    torch.save({"w": torch.zeros(1)}, real)
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = pickled if item.filename.endswith("/data.pkl") else src.read(item)
            dst.writestr(item, data)
    real.unlink()


@pytest.mark.parametrize(
    "pickled",
    [pickle.dumps({"state_dict": _RunsCode()}, protocol=2), _getattr_escape_pickle()],
    ids=["os.system", "getattr"],
)
def test_code_running_pickles_are_refused(tmp_path: Path, pickled: bytes) -> None:
    path = tmp_path / "evil.pth"
    _as_torch_file(path, pickled)
    with pytest.raises(UserInputError, match="refused for safety"):
        load_checkpoint_file(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


# ---------------------------------------------------------------------------------------------------------
# Every checkpoint read in the project is a safe one (docs/RELIABILITY.md, "Safe loading").

PROJECT_DIRS = (
    *tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ],
    "tools",
    "det_configs",
    "seg_configs",
    "tests",
)
UNSAFE_READERS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("numpy", "load"),
    ("np", "load"),
    ("torch", "load"),
}


def _unsafe_calls(source: str, filename: str) -> list[str]:
    """`torch.load(...)` without `weights_only=True`, any `weights_only=False`, pickle/numpy loaders."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        keywords = {k.arg: k.value for k in node.keywords}
        flag = keywords.get("weights_only")
        if isinstance(flag, ast.Constant) and flag.value is False:
            found.append(f"{where} weights_only=False")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = (func.value.id, func.attr)
            if name == ("torch", "load") and not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"{where} torch.load without weights_only=True")
            elif name in UNSAFE_READERS and name != ("torch", "load"):
                found.append(f"{where} {'.'.join(name)}")
    return found


def test_every_checkpoint_read_in_the_project_is_weights_only() -> None:
    root = Path(__file__).resolve().parents[1]
    files = [p for d in PROJECT_DIRS for p in sorted((root / d).rglob("*.py"))]
    assert len(files) > 50
    found = [hit for p in files for hit in _unsafe_calls(p.read_text(encoding="utf-8"), str(p.relative_to(root)))]
    assert not found, found
    # the checker itself catches each form
    assert (
        len(
            _unsafe_calls(
                "import torch, pickle\ntorch.load(f)\ntorch.load(f, weights_only=False)\n"
                "pickle.load(f)\nx(weights_only=False)\n",
                "probe.py",
            )
        )
        == 5
    )


@pytest.mark.subprocess
def test_mmengine_mmdet_mmseg_mmcv_loads_use_torchs_safe_default() -> None:
    """Their torch.load calls pass no weights_only, so torch 2.14's default (True) applies to them."""
    import inspect
    import os as _os

    import mmcv
    import mmdet
    import mmengine
    import mmseg

    assert inspect.signature(torch.load).parameters["weights_only"].default is None  # None: resolved to True
    assert not _os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"), "this variable turns safe loading off"
    calls = 0
    for package in (mmengine, mmdet, mmseg, mmcv):
        for path in Path(package.__file__).parent.rglob("*.py"):
            text = path.read_text(encoding="utf-8", errors="replace")
            assert "weights_only" not in text, f"{path} chooses weights_only itself"
            calls += text.count("torch.load(")
    assert calls > 0
    # ... and that default refuses a pickle that runs code, in a fresh process with nothing allowlisted.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import io, os, pickle, torch\n"
            "class X:\n    def __reduce__(self): return (os.getcwd, ())\n"
            "buf = io.BytesIO(); torch.save({'x': X()}, buf); buf.seek(0)\n"
            "try:\n    torch.load(buf)\nexcept pickle.UnpicklingError as e:\n"
            "    print('refused' if 'Weights only load failed' in str(e) else e)\n",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "refused", probe.stderr[-500:]
