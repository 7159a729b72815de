VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint bench bench-peers bench-defaults clean

$(BIN)/trainer: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev,export,tensorboard,mlflow]"
	touch $(BIN)/trainer

install: $(BIN)/trainer

demo: install
	rm -rf runs/demo
	$(BIN)/trainer train recipes/classification/resnet18_shapes.yaml --output-dir runs --name demo
	$(BIN)/trainer eval runs/demo --json runs/demo/eval.json

test: install
	$(BIN)/python -m pytest -n 2 tests

lint: install
	$(BIN)/ruff check trainer tests scripts

bench: install
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_train.py --plain-fused
	$(BIN)/python scripts/bench_losses.py
	$(BIN)/python scripts/bench_data.py
	$(BIN)/python scripts/bench_eval.py
	$(BIN)/python scripts/bench_cli.py

# trainer beside NetsPresso Trainer 1.4.1 and Ultralytics at equal settings (long; not part of `make test`).
# The peers' venvs and data go to PEERS_CACHE; e.g. make bench-peers PEERS_ARGS="--tasks detection --epochs 2"
PEERS_CACHE ?= $(HOME)/.cache/trainer-peers
PEERS_ARGS ?=
bench-peers: install
	$(BIN)/python scripts/bench_peers.py --cache $(PEERS_CACHE) $(PEERS_ARGS)

# Recipes that name only data, model, losses, epochs and batch size (issue 12): about 30 min on one thread
bench-defaults: install
	$(BIN)/python scripts/bench_defaults.py

clean:
	rm -rf runs .pytest_cache
