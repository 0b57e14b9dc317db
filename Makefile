# TheWorld — every target creates or reuses the virtualenv it needs (VENV, default .venv).
# CI points VENV at a cached directory outside the clone (see .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.theworld-installed
TINY_DIR ?= .tiny
MODEL ?= google/gemma-3-4b-it
IMAGE ?=
PROMPT ?= Is the red shape left of the blue shape?
CONFIG ?= configs/default.json
ACCELERATE_CONFIG ?=
ARGS ?=
SOURCES := $(wildcard python tests scripts examples benchmarks)

# Evaluation: MODEL is a TheWorld checkpoint (e.g. outputs/demo/world) or gemma3-baseline; DATA a local benchmark copy.
# The eval targets need MODEL set explicitly: the default Gemma id would be converted with a random projection.
EVAL_MODEL = $(if $(filter command line environment,$(origin MODEL)),$(MODEL),$(error set MODEL=<TheWorld checkpoint dir or Hub id> or MODEL=gemma3-baseline))
WORLD_STEPS ?= 0
DATA ?=
VSR_DATA ?=
COCO ?=
SPATIAL_DATA ?=
JUDGE ?= deterministic
RESULTS ?= outputs/eval

.PHONY: setup demo test format check typecheck run train-hf smoke-test train-simple clean distclean \
	eval-blink eval-gemma eval-vsr eval-spatial compare-results bench

# scripts/setup.sh creates or reuses the virtualenv, installs the package with its dev extras and touches $(STAMP).
$(STAMP): pyproject.toml
	bash scripts/setup.sh --venv "$(VENV)" --python "$(PYTHON)" --skip-models

setup: ## virtualenv + package + dev tools, the tiny offline checkpoints and a one-question check (scripts/setup.sh)
	bash scripts/setup.sh --venv "$(VENV)" --python "$(PYTHON)" --tiny-dir "$(TINY_DIR)"

demo: $(STAMP) ## tiny checkpoints, then train + evaluate TheWorld, the Gemma-only baseline and the world-only probe
	$(BIN)/python -m theworld.testing $(TINY_DIR)
	$(BIN)/python examples/train_demo.py --tiny-dir $(TINY_DIR) --out outputs/demo

test: $(STAMP) ## the whole offline test suite
	$(BIN)/python -m pytest -q

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

check: $(STAMP) ## lint + format check
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)

typecheck: $(STAMP)
	$(BIN)/pyright --pythonpath $(BIN)/python

run: $(STAMP) ## answer PROMPT about IMAGE with MODEL (a Gemma 3 / TheWorld checkpoint or Hub id)
	$(BIN)/python examples/inference.py --model "$(MODEL)" $(if $(IMAGE),--image "$(IMAGE)") --prompt "$(PROMPT)"

train-hf: $(STAMP) ## train with CONFIG; ACCELERATE_CONFIG=configs/accelerate/X.yaml launches it through accelerate
	$(if $(ACCELERATE_CONFIG),$(BIN)/accelerate launch --config_file $(ACCELERATE_CONFIG),$(BIN)/python) \
		scripts/train_hf.py --config $(CONFIG) $(ARGS)

smoke-test: $(STAMP) ## tiny checkpoints in TINY_DIR, then a few steps of configs/smoke_test.json
	$(BIN)/python -m theworld.testing $(TINY_DIR)
	$(BIN)/python scripts/train_hf.py --config configs/smoke_test.json --model_name $(TINY_DIR)/gemma \
		--cosmos_model_name $(TINY_DIR)/cosmos --world_image_size 64 --mixed_precision no $(ARGS)

train-simple: $(STAMP) ## examples/simple_training.py: a plain PyTorch loop on the tiny checkpoints
	$(BIN)/python -m theworld.testing $(TINY_DIR)
	$(BIN)/python examples/simple_training.py --tiny-dir $(TINY_DIR) $(ARGS)

eval-blink: $(STAMP) ## BLINK for MODEL, one run per WORLD_STEPS value (e.g. 0,4); DATA= local copy
	$(BIN)/python scripts/evaluate_blink.py --config configs/eval_blink.json --model "$(EVAL_MODEL)" \
		--num_world_steps $(WORLD_STEPS) $(if $(DATA),--data "$(DATA)") $(ARGS)

eval-gemma: $(STAMP) ## BLINK with plain Gemma 3 (the base_model of configs/eval_blink.json); DATA= local copy
	$(BIN)/python scripts/evaluate_blink.py --config configs/eval_blink.json --model gemma3-baseline \
		$(if $(DATA),--data "$(DATA)") $(ARGS)

eval-vsr: $(STAMP) ## VSR test split for MODEL: COCO= picture folder, VSR_DATA= jsonl file/dir (else the Hub)
	$(BIN)/python scripts/evaluate_vsr.py --model "$(EVAL_MODEL)" --images "$(COCO)" --num_world_steps $(WORLD_STEPS) \
		$(if $(VSR_DATA),--data "$(VSR_DATA)") $(ARGS)

eval-spatial: $(STAMP) ## SpatialRGPT-Bench for MODEL: SPATIAL_DATA= bench folder, JUDGE=deterministic|hf:M|openai:M
	$(BIN)/python scripts/spatial/eval_spatial_rgpt.py --model "$(EVAL_MODEL)" --num_world_steps $(WORLD_STEPS) \
		$(if $(SPATIAL_DATA),--data "$(SPATIAL_DATA)") --judge "$(JUDGE)" $(ARGS)

compare-results: $(STAMP) ## markdown table + bar chart of every run under RESULTS (deltas vs gemma3-baseline)
	$(BIN)/python scripts/compare_results.py $(RESULTS) --output $(RESULTS)/comparison.md \
		--plot $(RESULTS)/comparison.png $(ARGS)

bench: $(STAMP) ## every benchmark in benchmarks/ on the tiny model (< 5 min), results in benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run_all.py $(ARGS)

clean:
	rm -rf $(TINY_DIR) outputs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
