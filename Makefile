# Two commands for a newcomer: `make demo` (the main job) and `make test`. Both set up .venv first.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= quick
SEEDS   ?= 0
# Threads per process: 2 cores on the reference machine; tests run several processes at once.
export OMP_NUM_THREADS ?= 2
export MPLBACKEND := Agg

.PHONY: setup demo test test-fast lint format bench clean-demo help

help:
	@echo "make demo   - set up .venv, generate the embedded demo data, pretrain baseline vs EfficientTrain,"
	@echo "              fine-tune RetinaNet + Cascade Mask R-CNN from each, print the COCO mAP table"
	@echo "              (PROFILE=quick|full, SEEDS='0 1 2')"
	@echo "make test   - set up .venv, lint, run the whole test suite (what CI runs)"
	@echo "make test-fast - the tests not marked slow or subprocess (a developer's edit loop, < 2 minutes)"
	@echo "make lint   - ruff: lint and format check; make format rewrites the tree"
	@echo "make setup  - only create/refresh .venv (cached mmcv build)"
	@echo "make bench  - measured vs theoretical curriculum speedup on this machine (see BENCHMARKS.md)"

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py --profile $(PROFILE) --seeds $(SEEDS)

test: setup lint
	$(PY) -m pytest tests

test-fast: setup
	$(PY) -m pytest tests -m "not slow and not subprocess and not manual"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) tools/benchmark.py curriculum --model convnext_atto --curriculum efficienttrain

clean-demo:
	rm -rf work_dirs/demo
