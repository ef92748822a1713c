"""tools/compare.py on fabricated work dirs with known metrics: grouping, seeds, pairing, formats, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from etcore import errors
from etcore.formats import METRICS_SCHEMA, SEG_METRICS_SCHEMA
from reporting.cli import main as compare_main
from reporting.paper import backbone_family_size
from reporting.render import render
from reporting.runs import load_runs
from reporting.table import build_table

ROOT = Path(__file__).resolve().parents[1]

CASCADE, SWIN_T = "cascade_mask_rcnn", "swin_tiny_patch4_window7_224"
OFFSETS = {"AP": 0.0, "AP50": 0.2, "AP75": 0.05, "APs": -0.2, "APm": 0.03, "APl": 0.1}


def write_run(
    root: Path,
    name: str,
    *,
    curriculum: str | None = "baseline",
    seed: int = 0,
    box: float = 0.481,
    mask: float | None = 0.415,
    detector: str = CASCADE,
    backbone: str = SWIN_T,
    epochs: int = 300,
    hours: float = 10.0,
    train_hours: float | None = None,
    top1: float = 81.0,
    lr: float = 2e-4,
    checkpoint: str | None = None,
) -> Path:
    """A detection work dir as tools/test.py and the provenance hook write it (docs/FORMATS.md)."""
    work_dir = root / name
    work_dir.mkdir(parents=True)
    checkpoint = checkpoint or f"work_dirs/pt_{curriculum}_{epochs}/final.pth"

    def block(ap: float) -> dict:
        return {key: (-1.0 if key == "APl" and ap < 0.3 else round(ap + offset, 4)) for key, offset in OFFSETS.items()}

    config = {
        "model": {
            "type": "CascadeRCNN",
            "backbone": {"type": "TimmBackbone", "model_name": backbone, "checkpoint": checkpoint},
        },
        "optim_wrapper": {"optimizer": {"type": "AdamW", "lr": lr}},
        "train_pipeline": [{"type": "LoadImageFromFile"}, {"type": "Resize", "scale": [1333, 800]}],
        "work_dir": f"work_dirs/{name}",
        "load_from": f"work_dirs/{name}/epoch_12.pth",
        "randomness": {"seed": seed, "deterministic": False},
        "train_dataloader": {"sampler": {"seed": seed}},
    }
    metrics = {
        "schema": METRICS_SCHEMA,
        "config": "det_configs/x.py",
        "checkpoint": f"{name}/epoch_12.pth",
        "detector": detector,
        "backbone": backbone,
        "schedule": "1x",
        "seed": seed,
        "pretrain_checkpoint": checkpoint,
        "metrics": {"bbox": block(box)},
        "resolved_config": config,
    }
    if mask is not None:
        metrics["metrics"]["segm"] = block(mask)
    provenance = (
        None
        if curriculum is None
        else {
            "model_name": backbone,
            "curriculum": {"name": curriculum, "total_epochs": epochs, "stages": []},
            "epochs": epochs,
            "equivalent_epochs": epochs * (0.653 if curriculum == "efficienttrain" else 1.0),
            "wall_clock_s": hours * 3600,
            "device_hours": hours,
            **({} if train_hours is None else {"train_device_hours": train_hours}),
            "seed": 0,
            "final_top1": top1,
            "ema_top1": None,
        }
    )
    (work_dir / "coco_metrics.json").write_text(json.dumps(metrics))
    (work_dir / "pretrain_provenance.json").write_text(
        json.dumps(
            {"checkpoint": checkpoint, "sha256": f"sha-{checkpoint}", "weights": "model", "provenance": provenance}
        )
    )
    return work_dir


def rows_of(table, kind: str) -> list[dict]:
    return [row for row in table.rows if row["row"] == kind]


def test_single_pair_rows_delta_and_cost(tmp_path):
    write_run(tmp_path, "base", box=0.481, mask=0.415, hours=10.0, top1=81.0)
    write_run(tmp_path, "et", curriculum="efficienttrain", box=0.482, mask=0.418, hours=6.5, top1=81.2)
    table = build_table(load_runs([tmp_path]))
    assert [row["row"] for row in table.rows] == ["run", "run", "delta"]
    base, et = rows_of(table, "run")
    assert base["pretraining"] == "baseline 300ep" and et["pretraining"] == "efficienttrain 300ep"
    assert base["bbox_AP"].mean == pytest.approx(48.1) and et["segm_AP"].mean == pytest.approx(41.8)
    assert base["bbox_APl"].mean == pytest.approx(58.1) and base["segm_APl"].mean == pytest.approx(51.5)
    assert et["equivalent_epochs"].mean == pytest.approx(195.9)
    delta = rows_of(table, "delta")[0]
    assert delta["bbox_AP"].mean == pytest.approx(0.1) and delta["segm_AP"].mean == pytest.approx(0.3)
    assert delta["bbox_AP"].std is None and delta["seeds"] == "0"
    assert delta["top1"].mean == pytest.approx(0.2) and delta["pretrain_hours"].mean == pytest.approx(-3.5)
    assert "0.65x pretrain time" in delta["pretraining"]
    assert table.notes == []
    text = render(table, "markdown")
    assert "| 48.1 |" in text and "| 48.2 |" in text and "| +0.1 |" in text and "| +0.3 |" in text


def test_cost_column_compares_training_time_where_the_run_recorded_it(tmp_path):
    # whole wall clocks 10 h and 8 h, of which training 9 h and 5.85 h (the rest validation and checkpoints)
    write_run(tmp_path, "base", hours=10.0, train_hours=9.0)
    write_run(tmp_path, "et", curriculum="efficienttrain", hours=8.0, train_hours=5.85)
    table = build_table(load_runs([tmp_path]))
    base, et = rows_of(table, "run")
    assert (base["pretrain_hours"].mean, et["pretrain_hours"].mean) == (pytest.approx(9.0), pytest.approx(5.85))
    assert "0.65x pretrain time" in rows_of(table, "delta")[0]["pretraining"]


def test_multi_seed_mean_std_and_paired_delta(tmp_path):
    base_aps, et_aps = [0.400, 0.410, 0.420], [0.405, 0.412, 0.426, 0.500]
    for seed, ap in enumerate(base_aps):
        write_run(tmp_path / "nested" / "deeper", f"base_s{seed}", seed=seed, box=ap, mask=None)
    for seed, ap in enumerate(et_aps):  # seed 3 has no baseline partner
        write_run(tmp_path / "nested", f"et_s{seed}", curriculum="efficienttrain", seed=seed, box=ap, mask=None)
    table = build_table(load_runs([tmp_path]))
    base, et = rows_of(table, "run")
    assert base["bbox_AP"].mean == pytest.approx(41.0) and base["bbox_AP"].std == pytest.approx(1.0)
    assert base["bbox_AP"].n == 3 and base["seeds"] == "0,1,2"
    assert et["bbox_AP"].n == 4 and et["bbox_AP"].mean == pytest.approx(statistics.fmean(et_aps) * 100)
    delta = rows_of(table, "delta")[0]
    paired = [0.5, 0.2, 0.6]
    assert delta["seeds"] == "0,1,2" and delta["bbox_AP"].n == 3
    assert delta["bbox_AP"].mean == pytest.approx(statistics.fmean(paired))
    assert delta["bbox_AP"].std == pytest.approx(statistics.stdev(paired))
    assert delta["bbox_AP"].mean != pytest.approx(et["bbox_AP"].mean - base["bbox_AP"].mean)
    assert any("seed 3" in note and "left out of the paired delta" in note for note in table.notes)
    assert not any(c.key.startswith("segm_") for c in table.columns)  # box-only detector: no mask columns
    text = render(table, "markdown")
    assert "41.0 ± 1.0" in text and "+0.4 ± 0.2" in text


def test_refuses_to_pair_runs_whose_configs_differ(tmp_path):
    write_run(tmp_path, "base", seed=0)
    write_run(tmp_path, "base1", seed=1)
    write_run(tmp_path, "et", curriculum="efficienttrain", seed=0, lr=1e-4)  # a different recipe
    write_run(tmp_path, "et1", curriculum="efficienttrain", seed=1, box=0.490)  # differs only as allowed
    table = build_table(load_runs([tmp_path]))
    refused = [note for note in table.notes if note.startswith("not paired")]
    assert len(refused) == 1 and "optim_wrapper.optimizer.lr" in refused[0]
    assert "et" in refused[0] and "seed 0" in refused[0] and "\n" not in refused[0]
    assert "model.backbone.checkpoint" not in refused[0] and "work_dir" not in refused[0]
    delta = rows_of(table, "delta")[0]
    assert delta["seeds"] == "1" and delta["bbox_AP"].mean == pytest.approx(0.9)


def test_notes_seeds_of_one_arm_with_different_recipes(tmp_path):
    write_run(tmp_path, "base0", seed=0)
    write_run(tmp_path, "base1", seed=1, lr=1e-3)
    table = build_table(load_runs([tmp_path]))
    assert len(table.notes) == 1 and "averaged as baseline 300ep" in table.notes[0]
    assert "optim_wrapper.optimizer.lr" in table.notes[0]


def test_runs_without_seed_or_schedule_still_pair(tmp_path):
    for name, curriculum in (("base", "baseline"), ("et", "efficienttrain")):
        path = write_run(tmp_path, name, curriculum=curriculum) / "coco_metrics.json"
        document = json.loads(path.read_text())
        document.update(seed=None, schedule=None)
        path.write_text(json.dumps(document))
    table = build_table(load_runs([tmp_path]))
    assert [row["row"] for row in table.rows] == ["run", "run", "delta"]
    assert table.rows[2]["seeds"] == "n/a" and table.rows[2]["bbox_AP"].mean == pytest.approx(0.0)


def test_delta_uses_the_baseline_with_the_same_epochs(tmp_path):
    write_run(tmp_path, "base100", epochs=100, box=0.300)
    write_run(tmp_path, "base300", epochs=300, box=0.400)
    write_run(tmp_path, "et300", curriculum="efficienttrain", epochs=300, box=0.410)
    table = build_table(load_runs([tmp_path]))
    assert [row["pretraining"].split(",")[0] for row in table.rows] == [
        "baseline 100ep",
        "baseline 300ep",
        "efficienttrain 300ep",
        "Δ efficienttrain 300ep − baseline 300ep",
    ]
    assert table.rows[3]["bbox_AP"].mean == pytest.approx(1.0)


def test_fully_refused_pair_shows_no_numbers(tmp_path):
    write_run(tmp_path, "base")
    write_run(tmp_path, "et", curriculum="efficienttrain", lr=1e-4)
    table = build_table(load_runs([tmp_path]))
    delta = rows_of(table, "delta")[0]
    assert "not paired" in delta["pretraining"] and delta["bbox_AP"] is None and delta["segm_AP"] is None


def test_groups_by_detector_backbone_schedule(tmp_path):
    write_run(tmp_path, "c_base")
    write_run(tmp_path, "r_base", detector="retinanet", mask=None, box=0.417)
    write_run(tmp_path, "r_et", detector="retinanet", mask=None, box=0.418, curriculum="efficienttrain")
    write_run(tmp_path, "c_pp", curriculum="efficienttrain++", backbone="convnext_atto")
    table = build_table(load_runs([tmp_path]))
    keys = [(row["detector"], row["backbone"], row["row"], row["pretraining"].split()[0]) for row in table.rows]
    assert keys == [
        (CASCADE, "convnext_atto", "run", "efficienttrain++"),
        (CASCADE, SWIN_T, "run", "baseline"),
        ("retinanet", SWIN_T, "run", "baseline"),
        ("retinanet", SWIN_T, "run", "efficienttrain"),
        ("retinanet", SWIN_T, "delta", "Δ"),
    ]
    assert any("convnext_atto" in note and "no baseline" in note for note in table.notes)
    assert rows_of(table, "delta")[0]["bbox_AP"].mean == pytest.approx(0.1)
    assert table.rows[2]["segm_AP"] is None  # retinanet has no masks, the cascade runs do


def test_paper_rows_follow_the_run_of_the_same_curriculum(tmp_path):
    small = "swin_small_patch4_window7_224"
    write_run(tmp_path, "base", backbone=small)
    write_run(tmp_path, "etpp", curriculum="efficienttrain++", backbone=small, box=0.508, mask=0.438, hours=6.6)
    write_run(tmp_path, "et", curriculum="efficienttrain", backbone=small, epochs=200)
    write_run(tmp_path, "other", detector="retinanet", backbone="convnext_atto", mask=None)
    table = build_table(load_runs([tmp_path]), paper=True)
    cascade = [row for row in table.rows if row["detector"] == CASCADE]
    assert [(row["row"], row.get("method")) for row in cascade] == [
        ("run", "baseline"),
        ("paper", "baseline"),
        ("run", "efficienttrain"),
        ("delta", None),  # the paper has no EfficientTrain Swin-S row
        ("run", "efficienttrain++"),
        ("delta", None),
        ("paper", "efficienttrain++"),
        ("paper", "efficienttrain++"),
    ]
    paper = rows_of(table, "paper")
    assert [row["pretraining"] for row in paper] == [
        "paper: baseline (Swin-S)",
        "paper: efficienttrain++ (Swin-S)",
        "paper: Δ efficienttrain++ − baseline",
    ]
    assert [paper[0][f"bbox_{k}"].mean for k in ("AP", "AP50", "AP75")] == [50.0, 69.1, 54.4]
    assert [paper[1][f"segm_{k}"].mean for k in ("AP", "AP50", "AP75")] == [43.7, 67.1, 47.3]
    assert [paper[2][f"bbox_{k}"].mean for k in ("AP", "AP50", "AP75")] == [0.7, 0.8, 0.6]
    assert (paper[0]["speedup"].mean, paper[1]["speedup"].mean) == (1.0, 1.5)
    assert all(row["backbone"] == small for row in paper)
    measured = [row for row in cascade if row["row"] == "run"]
    assert [round(row["speedup"].mean, 3) for row in measured] == [1.0, 1.0, round(10.0 / 6.6, 3)]
    assert not rows_of(build_table(load_runs([tmp_path])), "paper")


def test_paper_alone_prints_every_published_row_as_csv(capsys):
    code, stdout, stderr = run_cli(["--paper", "--format", "csv"], capsys)
    assert code == 0 and stderr == ""
    records = list(csv.DictReader(io.StringIO(stdout)))
    assert len(records) == 9 + 14 and {r["row"] for r in records} == {"paper"}
    records = records[:9]  # Table 17 (COCO); Table 18 (ADE20K) follows, test_paper_alone_prints_table_18
    got = [
        (
            r["detector"],
            r["backbone"],
            r["method"],
            *(r[f"{t}_{k}"] for t in ("bbox", "segm") for k in ("AP", "AP50", "AP75")),
        )
        for r in records
    ]
    assert got[0] == ("retinanet", "Swin-T", "baseline", "41.7", "62.9", "44.5", "", "", "")
    assert got[4] == ("cascade_mask_rcnn", "Swin-T", "efficienttrain++", "48.4", "67.6", "52.6", "41.9", "64.8", "45.2")
    assert got[8] == ("cascade_mask_rcnn", "Swin-B", "efficienttrain++", "51.3", "70.5", "55.9", "44.3", "67.6", "48.0")
    assert [r["method"] for r in records] == [
        "baseline",
        "efficienttrain",
        "baseline",
        "efficienttrain",
        "efficienttrain++",
        "baseline",
        "efficienttrain++",
        "baseline",
        "efficienttrain++",
    ]
    assert [r["speedup"] for r in records] == ["1.0", "1.5", "1.0", "1.5", "1.5", "1.0", "1.5", "1.0", "1.5"]


def test_no_work_dir_without_paper_is_one_line(capsys):
    code, stdout, stderr = run_cli([], capsys)
    assert code == 2 and stdout == "" and "no work dir given" in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize(
    "name, expected",
    [
        ("swin_tiny_patch4_window7_224", "Swin-T"),
        ("swin-s", "Swin-S"),
        ("swin_base_patch4_window12_384", "Swin-B"),
        ("swinv2_tiny_window8_256", None),
        ("swin_transformer", None),
        ("resnet18", None),
    ],
)
def test_backbone_family_size(name, expected):
    assert backbone_family_size(name) == expected


def test_machine_readable_formats_parse(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, f"base{seed}", seed=seed, box=0.40 + seed / 100)
        write_run(tmp_path, f"et{seed}", curriculum="efficienttrain", seed=seed, box=0.41 + seed / 50)
    table = build_table(load_runs([tmp_path]), paper=True)

    records = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [r["row"] for r in records] == ["run", "paper", "run", "delta", "paper", "paper"]
    assert float(records[0]["bbox_AP"]) == pytest.approx(40.5)
    assert float(records[0]["bbox_AP_std"]) == pytest.approx(statistics.stdev([40.0, 41.0]), abs=1e-4)
    assert float(records[3]["bbox_AP"]) == pytest.approx(1.5) and records[1]["segm_AP"] == "41.5"
    assert records[4]["segm_AP75"] == "45.0" and records[5]["bbox_AP50"] == "0.5"

    document = json.loads(render(table, "json"))
    assert [c["key"] for c in document["columns"]] == [c.key for c in table.columns]
    assert document["rows"][3]["bbox_AP"]["mean"] == pytest.approx(1.5) and document["rows"][3]["bbox_AP"]["n"] == 2

    latex = render(table, "latex").strip().splitlines()
    spec = re.fullmatch(r"\\begin\{tabular\}\{([lr]+)\}", latex[0]).group(1)
    assert len(spec) == len(table.columns) and latex[-1] == r"\end{tabular}"
    body = [line for line in latex if line.endswith(r"\\")]
    assert len(body) == 1 + len(table.rows)
    assert all(len(re.findall(r"(?<!\\)&", line)) == len(spec) - 1 for line in body)
    assert r"swin\_tiny" in latex[4] and "$\\pm$" in "\n".join(latex) and "_tiny" not in latex[4].replace(r"\_", "")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        errors.run_cli(compare_main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cli_writes_out_file(tmp_path, capsys):
    write_run(tmp_path / "runs", "base")
    out = tmp_path / "report" / "table.md"
    code, stdout, _ = run_cli([str(tmp_path / "runs"), "--out", str(out)], capsys)
    assert code == 0 and stdout == ""
    assert out.read_text().startswith("| Row | Detector |")
    assert [p.name for p in out.parent.iterdir()] == ["table.md"]


def _malformed_json(root: Path) -> str:
    (write_run(root, "run") / "coco_metrics.json").write_text('{"schema": ')
    return "coco_metrics.json is not valid JSON"


def _missing_provenance(root: Path) -> str:
    (write_run(root, "run") / "pretrain_provenance.json").unlink()
    return "pretrain_provenance.json is missing"


def _percent_not_fraction(root: Path) -> str:
    path = write_run(root, "run") / "coco_metrics.json"
    path.write_text(path.read_text().replace('"AP": 0.481', '"AP": 48.1'))
    return "metrics.bbox.AP = 48.1 is not a fraction"


def _missing_key(root: Path) -> str:
    path = write_run(root, "run") / "coco_metrics.json"
    document = json.loads(path.read_text())
    del document["metrics"]["bbox"]["AP75"]
    path.write_text(json.dumps(document))
    return "'AP75' is missing"


def _duplicate_seed(root: Path) -> str:
    write_run(root, "a")
    write_run(root, "b")
    return "are both"


def _no_runs(root: Path) -> str:
    (root / "empty").mkdir()
    return "no coco_metrics.json or seg_metrics.json found"


@pytest.mark.parametrize(
    "make_bad", [_malformed_json, _missing_provenance, _percent_not_fraction, _missing_key, _duplicate_seed, _no_runs]
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make_bad):
    expected = make_bad(tmp_path)
    code, stdout, stderr = run_cli([str(tmp_path)], capsys)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and expected in stderr


@pytest.mark.subprocess
def test_cli_process_exit_code_and_no_traceback(tmp_path):
    tool = ROOT / "tools" / "compare.py"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(tool), str(tmp_path / "nowhere")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and "does not exist" in result.stderr


def test_cli_usage_error_is_one_line(tmp_path, capsys):
    code, stdout, stderr = run_cli([str(tmp_path), "--format", "xml"], capsys)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1 and "--format" in stderr


# ------------------------------------------------------------------------------------- segmentation runs

DEIT_S = "deit_small_patch16_224"
# EfficientTrain++ Table 18, as printed in the issue: UperNet schedule, backbone, method, speedup, mIoU, MS+flip
TABLE_18 = """
80k DeiT-S baseline 1.0 43.0 43.8
80k DeiT-S efficienttrain++ 1.6 43.8 44.9
80k Swin-T baseline 1.0 43.3 44.5
80k Swin-T efficienttrain++ 1.5 44.1 44.9
80k Swin-S baseline 1.0 47.5 48.9
80k Swin-S efficienttrain++ 1.5 47.8 49.2
160k DeiT-S baseline 1.0 43.1 44.0
160k DeiT-S efficienttrain++ 1.6 44.2 45.2
160k Swin-T baseline 1.0 44.4 45.8
160k Swin-T efficienttrain++ 1.5 44.8 46.1
160k Swin-S baseline 1.0 47.7 49.2
160k Swin-S efficienttrain++ 1.5 48.2 49.7
160k Swin-B baseline 1.0 48.0 49.6
160k Swin-B efficienttrain++ 1.5 48.5 50.0
"""


def write_seg_run(
    root: Path,
    name: str,
    *,
    curriculum: str = "baseline",
    seed: int = 0,
    miou: float = 0.430,
    miou_ms_flip: float | None = 0.438,
    backbone: str = DEIT_S,
    schedule: str = "80k",
    epochs: int = 300,
    hours: float = 10.0,
    lr: float = 6e-5,
    checkpoint: str | None = None,
) -> Path:
    """A segmentation work dir as tools/test.py (single scale, then --tta) and the provenance hook write it."""
    work_dir = root / name
    work_dir.mkdir(parents=True)
    checkpoint = checkpoint or f"work_dirs/pt_{curriculum}_{epochs}/final.pth"
    metrics = {"single_scale": {"mIoU": miou, "mAcc": 0.55, "aAcc": 0.8}}
    if miou_ms_flip is not None:
        metrics["ms_flip"] = {"mIoU": miou_ms_flip, "mAcc": 0.56, "aAcc": 0.81}
    document = {
        "schema": SEG_METRICS_SCHEMA,
        "config": "seg_configs/x.py",
        "checkpoint": f"{name}/iter_80000.pth",
        "checkpoint_sha256": "abc",
        "segmentor": "upernet",
        "backbone": backbone,
        "schedule": schedule,
        "seed": seed,
        "pretrain_checkpoint": checkpoint,
        "metrics": metrics,
        "predictions": {mode: None for mode in metrics},
        "resolved_config": {
            "model": {"type": "EncoderDecoder", "backbone": {"model_name": backbone, "checkpoint": checkpoint}},
            "optim_wrapper": {"optimizer": {"type": "AdamW", "lr": lr}},
            "randomness": {"seed": seed},
        },
    }
    provenance = {
        "model_name": backbone,
        "curriculum": {"name": curriculum, "total_epochs": epochs, "stages": []},
        "epochs": epochs,
        "equivalent_epochs": epochs * (0.667 if curriculum != "baseline" else 1.0),
        "device_hours": hours,
        "final_top1": 79.9,
    }
    (work_dir / "seg_metrics.json").write_text(json.dumps(document))
    record = {"checkpoint": checkpoint, "sha256": f"sha-{checkpoint}", "weights": "model", "provenance": provenance}
    (work_dir / "pretrain_provenance.json").write_text(json.dumps(record))
    return work_dir


def test_paper_alone_prints_table_18(capsys):
    code, stdout, _ = run_cli(["--paper", "--format", "csv"], capsys)
    assert code == 0
    records = [r for r in csv.DictReader(io.StringIO(stdout)) if r["detector"] == "upernet"]
    keys = ("schedule", "backbone", "method", "speedup", "miou", "miou_ms_flip")
    got = [" ".join(r[key] for key in keys) for r in records]
    assert got == TABLE_18.strip().splitlines()
    code, stdout, _ = run_cli(["--paper"], capsys)  # markdown: the same 14 rows, mIoU columns at the end
    lines = [line for line in stdout.splitlines() if "| upernet |" in line]
    assert len(lines) == 14 and lines[1].endswith("| 43.8 | 44.9 |") and "| 1.60 |" in lines[1]
    assert "| mIoU | mIoU MS+flip |" in stdout.splitlines()[0]


def test_seg_runs_beside_detection_runs_from_the_same_checkpoints(tmp_path):
    for seed in (0, 1):
        for curriculum, box, miou, hours in (("baseline", 0.40, 0.430, 10.0), ("efficienttrain++", 0.41, 0.440, 6.6)):
            common = dict(curriculum=curriculum, seed=seed, hours=hours)
            write_run(tmp_path / "det", f"{curriculum}{seed}", box=box + seed / 100, backbone=DEIT_S, **common)
            scores = dict(miou=miou + seed / 100, miou_ms_flip=miou + 0.01)
            write_seg_run(tmp_path / "seg", f"{curriculum}{seed}", **scores, **common)
    table = build_table(load_runs([tmp_path]), paper=True)
    columns = [c.key for c in table.columns]
    assert columns[-2:] == ["miou", "miou_ms_flip"] and "bbox_AP" in columns
    assert table.columns[1].header == "Detector / segmentor"
    seg = [row for row in table.rows if row["detector"] == "upernet"]
    assert [(row["row"], row.get("method")) for row in seg] == [
        ("run", "baseline"),
        ("paper", "baseline"),
        ("run", "efficienttrain++"),
        ("delta", None),
        ("paper", "efficienttrain++"),
        ("paper", "efficienttrain++"),
    ]
    base, etpp = rows_of(table, "run")[-2:]
    assert base["miou"].mean == pytest.approx(43.5) and base["miou"].std == pytest.approx(statistics.stdev([43, 44]))
    assert etpp["miou_ms_flip"].mean == pytest.approx(45.0) and base["bbox_AP"] is None
    assert etpp["speedup"].mean == pytest.approx(10.0 / 6.6)
    delta = [row for row in seg if row["row"] == "delta"][0]
    assert delta["miou"].mean == pytest.approx(1.0) and delta["miou"].n == 2 and delta["seeds"] == "0,1"
    assert "0.66x pretrain time" in delta["pretraining"]  # the cost, beside the gain
    paper = [row for row in seg if row["row"] == "paper"]
    assert (paper[0]["miou"].mean, paper[1]["miou_ms_flip"].mean, paper[2]["miou"].mean) == (43.0, 44.9, 0.8)
    # the detection arm of the same checkpoints has the same pretraining label
    det_arms = [row for row in table.rows if row["row"] == "run" and row["detector"] != "upernet"]
    assert [r["pretraining"] for r in det_arms] == [base["pretraining"], etpp["pretraining"]]
    assert det_arms[0]["miou"] is None


def test_seg_pairs_that_differ_in_more_than_the_checkpoint_are_refused(tmp_path):
    write_seg_run(tmp_path, "base")
    write_seg_run(tmp_path, "etpp", curriculum="efficienttrain++", lr=1e-4)
    table = build_table(load_runs([tmp_path]))
    delta = rows_of(table, "delta")[0]
    assert "not paired" in delta["pretraining"] and delta["miou"] is None
    assert any("optim_wrapper.optimizer.lr" in note for note in table.notes)


def test_a_seg_run_with_only_single_scale_has_no_ms_flip_number(tmp_path):
    write_seg_run(tmp_path, "base", miou_ms_flip=None)
    row = rows_of(build_table(load_runs([tmp_path])), "run")[0]
    assert row["miou"].mean == pytest.approx(43.0) and row["miou_ms_flip"] is None


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d["metrics"]["single_scale"].update(mIoU=43.0), "mIoU = 43.0 is not a fraction"),
        (lambda d: d["metrics"].update(multi_scale={}), "expected one or both of"),
        (lambda d: d.update(schema="other"), "schema 'other'"),
    ],
)
def test_bad_seg_metrics_are_one_line_exit_2(tmp_path, capsys, edit, expected):
    path = write_seg_run(tmp_path, "run") / "seg_metrics.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    code, stdout, stderr = run_cli([str(tmp_path)], capsys)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1 and expected in stderr
