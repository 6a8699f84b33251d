# The two commands of the README: `make demo` and `make test`.
# Both create .venv with Python 3.11 and install the package on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint docs install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "advisering needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/advisering demo

test: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/test.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy advisering

docs: $(BIN)/.installed
	$(BIN)/python -m advisering.dev.docs_gen

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
