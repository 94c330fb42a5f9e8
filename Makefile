# Emotion-analysis platform. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/fer2013/fer2013_training_publictest.csv.gz
CONFIG ?= training/configs/fer_vgg.json
PYTEST_ARGS ?=

.PHONY: help setup protos run test lint train evaluate onnx bench mar torchserve images browser clean hostile load overload soak faults

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 14

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(STAMP)  ## create .venv and install pinned dependencies

protos: $(STAMP)  ## regenerate the emotion.v1 package from protos/
	$(PY) protos/generate.py

run: setup protos  ## start all four services on localhost (Ctrl-C stops them)
	$(PY) -m services.devrun

browser:  ## install Debian's headless Chromium for the browser tests (needs root and apt)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; } || \
		echo "chromium not installed: browser tests will be skipped"

test: setup protos browser  ## run the whole test suite (real databases, real services)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup  ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services training tests bench protos/generate.py

train: setup  ## train a model (CONFIG=..., see training/configs/)
	$(PY) -m training.train --config $(CONFIG)

evaluate: setup  ## evaluate the shipped model on PublicTest (with and without TTA)
	$(PY) -m training.evaluate --data $(DATA) --split PublicTest --ferplus --json
	$(PY) -m training.evaluate --data $(DATA) --split PublicTest --tta --json

onnx: setup  ## ONNX + int8 ONNX exports of the shipped model, with size/accuracy/speed report
	$(PY) -m training.onnx_export

bench: setup  ## model speed benchmark (more: bench/*.py, see docs/BENCHMARKS.md)
	$(PY) -m training.benchmark

mar: setup  ## build the TorchServe model archive into model_store/
	$(PY) -m services.inference.torchserve.build_mar

torchserve: mar  ## run TorchServe on loopback with the model (then INFERENCE_BACKEND=torchserve make run)
	$(VENV)/bin/torchserve --start --foreground --ncs --model-store model_store \
		--ts-config services/inference/torchserve/config.properties --models fer_expression=fer_expression.mar

hostile: setup  ## hostile input, attacks, schemathesis and one short fault scenario (also in make test)
	$(PY) -m pytest tests/pressure

load: setup  ## mixed load through the gateway and directly against inference at 1/8/32/64 clients
	$(PY) bench/load.py --json var/bench/load.json --markdown var/bench/load.md

overload: setup  ## past capacity: clean refusals, then recovery
	$(PY) bench/load.py --levels '' --overload --duration 15

soak: setup  ## 10 minutes at 16 clients: errors, RSS and open files per service
	$(PY) bench/load.py --soak 10 --json var/bench/soak.json --markdown var/bench/soak.md

faults: setup  ## kill -9 each service, restart the databases, delay/drop traffic (restarts PostgreSQL and MariaDB!)
	$(PY) bench/faults.py --json var/bench/faults.json --markdown var/bench/faults.md

REGISTRY ?= emotion
TAG ?= dev
images: mar  ## build the container images (needs a Docker engine): REGISTRY=... TAG=...
	@command -v docker >/dev/null || { echo "make images needs a Docker engine"; exit 1; }
	for image in auth history inference gateway torchserve; do \
		docker build -f docker/$$image/Dockerfile -t $(REGISTRY)/$$image:$(TAG) . || exit 1; done

clean:  ## remove generated state (databases, keys, caches); keeps .venv
	rm -rf var test-artifacts .pytest_cache
