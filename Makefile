# The two commands of README.md: `make demo` and `make test`. Both build the local virtual
# environment first, so a fresh machine needs nothing but python3 (3.11+) and this file.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck-imports unit bench venv clean

venv: $(STAMP)

# torch is pinned through constraints.txt (the CPU wheel); pyproject.toml stays loose for users.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/verde demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: $(STAMP)
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m pytest -q

test: lint unit

bench: $(STAMP)
	@for b in bench/*_bench.py bench/robust_*.py; do [ -f "$$b" ] && $(BIN)/python "$$b"; done; true

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
