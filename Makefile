# Two commands for a newcomer: `make demo` (the main job) and `make test`. Both set up .venv first.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= quick
SEEDS   ?= 0
# Threads per process: 2 cores on the reference machine; tests run several processes at once.
export OMP_NUM_THREADS ?= 2
export MPLBACKEND := Agg

.PHONY: setup demo test bench clean-demo help

help:
	@echo "make demo   - set up .venv, generate the embedded demo data, pretrain baseline vs EfficientTrain,"
	@echo "              fine-tune RetinaNet + Cascade Mask R-CNN from each, print the COCO mAP table"
	@echo "              (PROFILE=quick|full, SEEDS='0 1 2')"
	@echo "make test   - set up .venv, run the test suite"
	@echo "make setup  - only create/refresh .venv (cached mmcv build)"
	@echo "make bench  - measured vs theoretical curriculum speedup on this machine (see BENCHMARKS.md)"

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py --profile $(PROFILE) --seeds $(SEEDS)

test: setup
	$(PY) -m pytest tests

bench: setup
	$(PY) tools/benchmark.py curriculum --model convnext_atto --curriculum efficienttrain

clean-demo:
	rm -rf work_dirs/demo
