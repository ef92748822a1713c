"""Curriculum values: the papers' schedules, compute accounting, custom files and malformed specs."""

from __future__ import annotations

import json

import pytest
import yaml

from etcore.errors import UserInputError
from pretraining.curriculum import (
    Curriculum,
    Stage,
    build_curriculum,
    curriculum_from_dict,
    model_family,
    required_size_multiple,
    save_curriculum_file,
)


def test_efficienttrain_300_epochs_matches_iccv_table():
    curriculum = build_curriculum("efficienttrain", 300)
    spans = [(s.start_epoch, s.end_epoch, s.input_size, s.randaug_magnitude) for s in curriculum.stages]
    assert spans == [
        (0, 60, 160, 1.0),
        (60, 120, 160, 3.0),
        (120, 180, 160, 5.0),
        (180, 240, 192, 7.0),
        (240, 300, 224, 9.0),
    ]
    assert curriculum.total_epochs == 300 and curriculum.final_size == 224
    assert curriculum.equivalent_epochs() == pytest.approx(195.918, abs=1e-3)
    assert round(curriculum.equivalent_epochs(), 1) == 195.9
    assert curriculum.compute_ratio() == pytest.approx(0.653, abs=5e-4)


def test_stage_lookup_and_compute_progress():
    curriculum = build_curriculum("efficienttrain", 300)
    assert curriculum.stage_at(0).input_size == 160 and curriculum.stage_index(0) == 0
    assert curriculum.stage_index(179) == 2 and curriculum.stage_index(180) == 3
    assert curriculum.stage_at(299).randaug_magnitude == 9.0
    with pytest.raises(ValueError):
        curriculum.stage_at(300)
    total = curriculum.equivalent_epochs()
    assert curriculum.compute_progress(0) == 0.0
    assert curriculum.compute_progress(300) == 1.0
    assert curriculum.compute_progress(400) == 1.0
    assert curriculum.compute_progress(60) == pytest.approx(60 * (160 / 224) ** 2 / total)
    # fractional epochs inside the 192 stage grow at that stage's rate
    expected = (180 * (160 / 224) ** 2 + 10.5 * (192 / 224) ** 2) / total
    assert curriculum.compute_progress(190.5) == pytest.approx(expected)
    assert curriculum.epoch_cost(200) == pytest.approx((192 / 224) ** 2)


def test_baseline_is_full_size_magnitude_nine():
    curriculum = build_curriculum("baseline", 7, final_size=192)
    assert [(s.start_epoch, s.end_epoch, s.input_size, s.randaug_magnitude) for s in curriculum.stages] == [
        (0, 7, 192, 9.0)
    ]
    assert curriculum.equivalent_epochs() == 7.0 and curriculum.compute_progress(3.5) == 0.5


def test_efficienttrain_scales_sizes_to_final_size_and_multiple():
    curriculum = build_curriculum("efficienttrain", 10, final_size=256)
    assert [s.input_size for s in curriculum.stages] == [192, 192, 192, 224, 256]  # 182.9 -> 192, 219.4 -> 224
    assert [s.epochs for s in curriculum.stages] == [2] * 5
    deit = build_curriculum("efficienttrain", 10, final_size=112, model_name="deit_tiny_patch16_224")
    assert [s.input_size for s in deit.stages] == [80, 80, 80, 96, 112]  # multiples of the 16-pixel patch


def test_efficienttrain_with_fewer_epochs_than_stages_keeps_the_final_stage():
    curriculum = build_curriculum("efficienttrain", 2)
    assert curriculum.total_epochs == 2
    assert curriculum.stages[-1].input_size == 224 and curriculum.stages[-1].randaug_magnitude == 9.0


@pytest.mark.parametrize(
    "family, sizes",
    [
        ("convnext", [160] * 6 + [224] * 4),
        ("swin", [96] * 2 + [160] * 4 + [224] * 4),
        ("deit", [96] * 2 + [160] * 4 + [192] * 2 + [224] * 2),
    ],
)
@pytest.mark.parametrize("budget", [300, 200, 100, 37])
def test_efficienttrain_pp_stages_cost_equal_compute_and_total_the_budget(family, sizes, budget):
    curriculum = build_curriculum("efficienttrain++", budget, family=family)
    assert [s.input_size for s in curriculum.stages] == sizes
    assert [s.randaug_magnitude for s in curriculum.stages] == [float(k) for k in range(10)]
    # The official int() of --end_epoch and round() of the resumed epoch (tests/test_pretraining_fidelity.py
    # checks the exact epochs): each stage within 2 real epochs of E/10 compute, the total within 1.1 epochs.
    assert abs(curriculum.equivalent_epochs() - budget) <= 1.1
    for stage in curriculum.stages:
        cost = (stage.input_size / 224) ** 2
        assert abs(stage.epochs * cost - budget / 10) <= 2 * cost + 1e-9
    ideal_real_epochs = sum(budget / 10 * (224 / s) ** 2 for s in sizes)
    assert abs(curriculum.total_epochs - ideal_real_epochs) <= 2 * len(sizes)


def test_efficienttrain_pp_family_from_model_name_and_errors():
    by_model = build_curriculum("efficienttrain++", 100, model_name="convnext_atto")
    assert by_model == build_curriculum("efficienttrain++", 100, family="convnext")
    with pytest.raises(UserInputError, match="model_name=.*family="):
        build_curriculum("efficienttrain++", 100)
    with pytest.raises(UserInputError, match="efficientnet_b0"):
        build_curriculum("efficienttrain++", 100, model_name="efficientnet_b0")


def test_model_family_and_size_multiple():
    assert model_family("swin_tiny_patch4_window7_224") == "swin"
    assert model_family("convnext_atto.d2_in1k") == "convnext"
    assert model_family("resnet18") == "resnet"
    assert model_family("deit_small_patch16_224") == "deit"
    assert model_family("vit_base_patch14_dinov2") == "vit"
    assert model_family("efficientnet_b0") == "efficientnet"  # a registry family without an ET++ schedule
    assert model_family("regnetx_002") == "other"
    assert required_size_multiple("vit_base_patch14_dinov2") == 14
    assert required_size_multiple("deit_tiny_patch16_224") == 16
    assert required_size_multiple("swin_tiny_patch4_window7_224") == 32
    assert required_size_multiple("resnet18") == 32


def test_dict_round_trip_is_plain_json():
    curriculum = build_curriculum("efficienttrain++", 50, family="deit")
    data = json.loads(json.dumps(curriculum.to_dict()))
    assert curriculum_from_dict(data) == curriculum
    assert data["stages"][0] == {
        "start_epoch": 0,
        "end_epoch": curriculum.stages[0].end_epoch,
        "input_size": 96,
        "randaug_magnitude": 0.0,
        "batch_scale": 2,
        "lr_epochs": 272,  # int(50 * (224/96)^2): stage 0's own cosine
        "lr_start_epoch": 0,
        "lr_warmup_epochs": 54.0,  # DeiT: int(0.2 * 50 * (224/96)^2)
    }


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_custom_file_round_trip(tmp_path, suffix):
    original = Curriculum("mine", (Stage(0, 4, 128, 2.0), Stage(4, 10, 224, 9.0)), 10, 224)
    path = save_curriculum_file(original, tmp_path / f"mine{suffix}")
    assert build_curriculum(str(path), 10) == original
    assert build_curriculum(str(path), None) == original


def test_custom_yaml_with_stage_lengths(tmp_path):
    path = tmp_path / "short.yml"
    path.write_text(
        "final_size: 192\nstages:\n"
        "  - {epochs: 3, input_size: 96, randaug_magnitude: 1}\n"
        "  - {epochs: 2, input_size: 192, randaug_magnitude: 9.5}\n"
    )
    curriculum = build_curriculum(str(path), 5, final_size=192)
    assert curriculum.name == "short"
    assert [(s.start_epoch, s.end_epoch, s.input_size, s.randaug_magnitude) for s in curriculum.stages] == [
        (0, 3, 96, 1.0),
        (3, 5, 192, 9.5),
    ]


def _write(tmp_path, data, suffix=".json"):
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    "stages, epochs, message",
    [
        (
            [
                {"start_epoch": 0, "end_epoch": 6, "input_size": 160, "randaug_magnitude": 1},
                {"start_epoch": 5, "end_epoch": 10, "input_size": 224, "randaug_magnitude": 9},
            ],
            10,
            "overlaps",
        ),
        (
            [
                {"start_epoch": 5, "end_epoch": 10, "input_size": 224, "randaug_magnitude": 9},
                {"start_epoch": 0, "end_epoch": 5, "input_size": 160, "randaug_magnitude": 1},
            ],
            10,
            r"leaves epochs 0-5",
        ),
        (
            [
                {"start_epoch": 0, "end_epoch": 4, "input_size": 160, "randaug_magnitude": 1},
                {"start_epoch": 5, "end_epoch": 10, "input_size": 224, "randaug_magnitude": 9},
            ],
            10,
            r"leaves epochs 4-5",
        ),
        (
            [
                {"epochs": 5, "input_size": 150, "randaug_magnitude": 1},
                {"epochs": 5, "input_size": 224, "randaug_magnitude": 9},
            ],
            10,
            r"150 is not a multiple of 32.*160",
        ),
        (
            [
                {"epochs": 5, "input_size": 256, "randaug_magnitude": 1},
                {"epochs": 5, "input_size": 224, "randaug_magnitude": 9},
            ],
            10,
            r"256 is above the final size 224",
        ),
        (
            [{"epochs": 5, "input_size": 224, "randaug_magnitude": 9}],
            10,
            r"cover 5 epochs but the run's --epochs is 10",
        ),
        ([{"epochs": 0, "input_size": 224, "randaug_magnitude": 9}], None, "has no epochs"),
        ([{"epochs": 5, "input_size": 224}], 5, r"stages\[0\]: 'randaug_magnitude' is missing"),
        ([{"epochs": 5, "input_size": 224, "randaug_magnitude": 9, "lr": 1}], 5, r"unknown field\(s\) lr"),
        ([{"epochs": 5, "input_size": 224, "randaug_magnitude": -1}], 5, "must be a number >= 0"),
        ([{"epochs": "5", "input_size": 224, "randaug_magnitude": 9}], 5, r"'epochs' must be a whole number"),
        ([], 5, "'stages' must be a non-empty list"),
    ],
)
def test_malformed_files_raise_user_input_error_naming_the_problem(tmp_path, stages, epochs, message):
    path = _write(tmp_path, {"final_size": 224, "stages": stages})
    with pytest.raises(UserInputError, match=message) as info:
        build_curriculum(path, epochs)
    assert path in str(info.value) and "\n" not in str(info.value)


def test_malformed_names_and_files(tmp_path):
    with pytest.raises(UserInputError, match="unknown curriculum 'efficientrain'.*baseline"):
        build_curriculum("efficientrain", 300)
    with pytest.raises(UserInputError, match="does not exist"):
        build_curriculum(str(tmp_path / "missing.yaml"), 10)
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages: [ {epochs: 3, \n")
    with pytest.raises(UserInputError, match=r"broken.yaml is not valid YAML"):
        build_curriculum(str(broken), 3)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"stages": [}')
    with pytest.raises(UserInputError, match=r"bad.json is not valid JSON"):
        build_curriculum(str(bad_json), 3)
    mismatch = _write(
        tmp_path, {"final_size": 256, "stages": [{"epochs": 2, "input_size": 256, "randaug_magnitude": 9}]}, ".yaml"
    )
    with pytest.raises(UserInputError, match="final_size 256 differs from the run's final input size 224"):
        build_curriculum(mismatch, 2, final_size=224)
    with pytest.raises(UserInputError, match="unknown curriculum option"):
        build_curriculum("baseline", 10, magnitude=3)
    with pytest.raises(UserInputError, match="final size 200 is not a multiple of 32"):
        build_curriculum("efficienttrain", 10, final_size=200)
    with pytest.raises(UserInputError, match="epochs must be a positive whole number"):
        build_curriculum("efficienttrain", 0)


def test_curriculum_value_is_validated_and_hashable():
    with pytest.raises(UserInputError, match="stages end at epoch 5 but total_epochs is 6"):
        Curriculum("x", (Stage(0, 5, 224, 9.0),), 6, 224)
    a = Curriculum("x", [Stage(0, 5, 224, 9.0)], 5, 224)
    assert isinstance(a.stages, tuple) and hash(a) == hash(Curriculum("x", (Stage(0, 5, 224, 9.0),), 5, 224))


def test_shipped_example_file_spells_out_efficienttrain():
    from pathlib import Path

    import pretraining

    example = Path(pretraining.__file__).parent / "curricula" / "efficienttrain_300ep.yaml"
    from_file = build_curriculum(str(example), 300)
    named = build_curriculum("efficienttrain", 300)
    assert from_file.stages == named.stages and from_file.final_size == named.final_size
    assert from_file.name == "efficienttrain-300ep"
