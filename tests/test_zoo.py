"""tools/compare.py --format zoo on fabricated work dirs laid out as the demo's (det/ and seg/ below one root):
one section per detector or segmentor, one row per model, #Params / FLOPs at the test size, and links to the
config, log and checkpoint that resolve from wherever the table is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_compare import write_run, write_seg_run

from etcore import errors
from reporting.cli import main as compare
from reporting.report import tensorboard_line

TIMESTAMP = "20261206_101500"


def complete(work_dir: Path, checkpoint: str, params: int | None, flops: int = 2_500_000_000) -> Path:
    """Add what tools/train.py and tools/test.py leave beside the metrics: the config copy, the training log
    folder, the checkpoint, and the metrics file's `complexity` / `train_log` entries."""
    name = "seg_metrics.json" if (work_dir / "seg_metrics.json").exists() else "coco_metrics.json"
    document = json.loads((work_dir / name).read_text())
    (work_dir / Path(document["config"]).name).write_text("# the resolved config mmengine dumps\n")
    (work_dir / checkpoint).write_bytes(b"weights")
    log_dir = work_dir / TIMESTAMP
    (log_dir / "vis_data").mkdir(parents=True)
    (log_dir / f"{TIMESTAMP}.log").write_text("Iter(train) [1/1] loss: 1.0\n")
    (log_dir / "vis_data" / "scalars.json").write_text('{"loss": 1.0, "step": 1}\n')
    document["train_log"] = str(log_dir)
    if params is not None:
        document["complexity"] = {"params": params, "flops": flops, "input_shape": [800, 1216], "counter": "test"}
    (work_dir / name).write_text(json.dumps(document))
    return work_dir


@pytest.fixture()
def demo_like(tmp_path: Path) -> Path:
    root = tmp_path / "work_dirs" / "demo"
    for seed in (0, 1):
        for curriculum, box, hours in (("baseline", 0.40, 10.0), ("efficienttrain", 0.42, 6.5)):
            name = f"cascade_{curriculum}_s{seed}"
            work_dir = write_run(root / "det", name, curriculum=curriculum, seed=seed, box=box, hours=hours)
            complete(work_dir, "epoch_12.pth", params=None if (seed, curriculum) == (1, "baseline") else 77_600_000)
        name = f"retinanet_s{seed}"
        work_dir = write_run(root / "det", name, detector="retinanet", mask=None, seed=seed, box=0.37)
        complete(work_dir, "epoch_12.pth", params=37_700_000, flops=180_000_000_000)
    complete(write_seg_run(root / "seg", "upernet_s0", miou=0.445), "iter_80000.pth", params=60_000_000)
    return root


def _section(text: str, title: str) -> list[list[str]]:
    lines = text.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_zoo_has_a_section_per_model_and_a_row_per_run_with_resolving_links(demo_like: Path, tmp_path: Path) -> None:
    out = demo_like / "zoo.md"
    assert compare([str(demo_like), "--format", "zoo", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.index("### RetinaNet") < text.index("### Cascade Mask R-CNN") < text.index("### UperNet")
    cascade = _section(text, "Cascade Mask R-CNN")
    assert cascade[0] == [
        "Backbone", "Pretraining", "Lr schd", "Seed", "box AP", "mask AP", "Test size", "#Params (M)", "FLOPs (G)",
        "Config", "Log", "Checkpoint",
    ]  # fmt: skip
    rows = cascade[2:]
    assert [(row[1].split(",")[0], row[3]) for row in rows] == [
        ("baseline", "0"), ("baseline", "1"), ("efficienttrain", "0"), ("efficienttrain", "1")
    ]  # fmt: skip
    assert rows[0][1] == "baseline, 300 ep (300.0 eq.), 10 h"
    assert rows[2][1] == "efficienttrain, 300 ep (195.9 eq.), 6.5 h"
    assert rows[0][4:9] == ["40.0", "41.5", "800×1216", "77.60", "2.50"]
    assert rows[1][6:9] == ["–", "–", "–"]  # tested before the measurement existed
    assert "#Params / FLOPs are missing for" in text and "cascade_baseline_s1" in text
    retinanet = _section(text, "RetinaNet")
    assert "mask AP" not in retinanet[0] and retinanet[2][4:8] == ["37.0", "800×1216", "37.70", "180.00"]
    upernet = _section(text, "UperNet")
    assert upernet[0][3:6] == ["Seed", "mIoU", "mIoU (MS+flip)"] and upernet[2][4:6] == ["44.5", "43.8"]

    links = re.findall(r"\]\(([^)]+)\)", text)
    assert len(links) == 7 * 4  # config, log, json log and checkpoint of every run
    assert all(not Path(link).is_absolute() and (out.parent / link).is_file() for link in links)
    assert "(det/cascade_baseline_s0/epoch_12.pth)" in text  # relative to the table's folder

    elsewhere = tmp_path / "published" / "README.md"  # the same runs, the table in another folder
    assert compare([str(demo_like / "det"), "--format", "zoo", "--out", str(elsewhere)]) == 0
    moved = re.findall(r"\]\(([^)]+)\)", elsewhere.read_text())
    assert all((elsewhere.parent / link).is_file() for link in moved) and moved[0].startswith("../")


def test_zoo_without_the_files_shows_names_without_links(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "bare", detector="retinanet", mask=None)  # metrics only: no config copy, log, checkpoint
    assert compare([str(tmp_path), "--format", "zoo"]) == 0
    row = _section(capsys.readouterr().out, "RetinaNet")[2]
    assert row[-3:] == ["x.py", "–", "–"] and "](" not in " ".join(row)


def test_zoo_refuses_paper_rows_and_bad_complexity_in_one_line(tmp_path: Path, capsys) -> None:
    work_dir = write_run(tmp_path, "run", detector="retinanet", mask=None)
    for argv in (["--format", "zoo", "--paper", str(tmp_path)], ["--format", "zoo", "--paper"]):
        with pytest.raises(SystemExit) as exit_info:
            errors.run_cli(compare, argv)
        assert exit_info.value.code == 2 and "drop --paper" in capsys.readouterr().err
    document = json.loads((work_dir / "coco_metrics.json").read_text())
    document["complexity"] = {"params": "many", "flops": 1, "input_shape": [1, 1]}
    (work_dir / "coco_metrics.json").write_text(json.dumps(document))
    with pytest.raises(SystemExit) as exit_info:
        errors.run_cli(compare, [str(tmp_path), "--format", "zoo"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "complexity.params" in err


def test_tensorboard_line_only_where_runs_logged_to_tensorboard(tmp_path: Path) -> None:
    assert tensorboard_line(tmp_path) is None
    events = tmp_path / "pretrain" / "resnet18_baseline_s0" / "tensorboard" / "events.out.tfevents.1.host"
    events.parent.mkdir(parents=True)
    events.write_bytes(b"")
    assert tensorboard_line(tmp_path) == f"`tensorboard --logdir {tmp_path.as_posix()}`"
