"""Fine-tuning runtime for the mmdet configs: the train/test entry points, config and data checks, atomic
checkpoints and the metrics file. `tools/train.py` and `tools/test.py` are thin wrappers around it.
"""

import warnings

# mmengine imports pkg_resources, whose deprecation notice would precede every message of the tools
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
