"""Training curricula: the value type (`value`), the papers' tables (`papers`), the builders (`builders`) and the
file format (`files`). Everything a room needs is importable from `pretraining.curriculum` itself.
"""

from pretraining.curriculum.builders import (
    build_curriculum,
    curriculum_from_budget,
    curriculum_from_sizes,
    curriculum_from_stage_schedules,
    scale_size,
)
from pretraining.curriculum.files import (
    CURRICULUM_SUFFIXES,
    curriculum_from_dict,
    load_curriculum_file,
    save_curriculum_file,
)
from pretraining.curriculum.papers import (
    BASELINE_MAGNITUDE,
    CURRICULUM_NAMES,
    DEFAULT_SIZE_MULTIPLE,
    EFFICIENTTRAIN_BATCH_SCALES,
    EFFICIENTTRAIN_MAGNITUDES,
    EFFICIENTTRAIN_SIZES_224,
    ETPP_DROP_PATH_REFERENCE_EPOCHS,
    RECIPE_EPOCHS,
    RECIPE_WARMUP_EPOCHS,
    canonical_curriculum_name,
    etpp_family,
    model_family,
    required_size_multiple,
)
from pretraining.curriculum.value import LOWFREQ_OPS, LR_AXES, Curriculum, Stage, stage_batch

__all__ = [
    "BASELINE_MAGNITUDE",
    "CURRICULUM_NAMES",
    "CURRICULUM_SUFFIXES",
    "DEFAULT_SIZE_MULTIPLE",
    "EFFICIENTTRAIN_BATCH_SCALES",
    "EFFICIENTTRAIN_MAGNITUDES",
    "EFFICIENTTRAIN_SIZES_224",
    "ETPP_DROP_PATH_REFERENCE_EPOCHS",
    "LOWFREQ_OPS",
    "LR_AXES",
    "RECIPE_EPOCHS",
    "RECIPE_WARMUP_EPOCHS",
    "Curriculum",
    "Stage",
    "build_curriculum",
    "canonical_curriculum_name",
    "curriculum_from_budget",
    "curriculum_from_dict",
    "curriculum_from_sizes",
    "curriculum_from_stage_schedules",
    "etpp_family",
    "load_curriculum_file",
    "model_family",
    "required_size_multiple",
    "save_curriculum_file",
    "scale_size",
    "stage_batch",
]
