# The two set-up commands: `make run` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast index clean-index

install: $(STAMP)

# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
# llama-cpp-python compiles from source once (about 15 minutes on 2 cores); pip caches the wheel.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

index: install
	$(BIN)/rag index seeds/

run: index
	$(BIN)/rag search "Does Microsoft keep exclusive rights?" --k 3
	$(BIN)/rag ask "When were the details disclosed?"

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not slow"

clean-index:
	rm -rf index/versions index/CURRENT index/.lock
