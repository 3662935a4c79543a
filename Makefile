# aioserving — `make serve` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS ?= .cache/models
PYTEST_ARGS ?=

.PHONY: serve test bench bench-smoke bench-ab models protos clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

models: $(STAMP)
	$(PY) -m aioserving.demo --out $(MODELS)

serve: models
	$(PY) -m aioserving serve --port=8500 --rest_api_port=8501 \
	    --model_config_file=$(MODELS)/models.config

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

bench-smoke: $(STAMP)
	$(PY) -m bench --smoke

bench-ab: $(STAMP)
	$(PY) -m bench --ab

protos: $(STAMP)
	$(PY) -m aioserving.protos_build

clean:
	rm -rf $(VENV) .cache build *.egg-info
