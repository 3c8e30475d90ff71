# `make run`: install, then the demo loop on embedded defaults.
# `make test`: install, then the test suite (what CI runs).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned, so pip takes the CPU wheel on the machine, not a CUDA build
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/ratchet --config configs/demo.yaml demo

test: install
	$(BIN)/lint-imports --no-cache
	# --durations: CI's log names the slowest tests, so the 15-minute budget is watched, not guessed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest --durations=30

test-all: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "" 

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/promotion_gate.py
	$(BIN)/python benchmarks/data_repo.py --quick

clean:
	rm -rf .ratchet .pytest_cache
