# Veil — `make demo` and `make test` create the environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.veil-installed

.PHONY: env demo test bench lint typecheck clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision pinned to the releases this project is tested with
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: env
	$(VENV)/bin/veil scan examples/images --model nudenet --model examples/demo-model/model.json --out demo-out
	@echo "Open demo-out/report.html"

test: env
	$(PY) -m pytest -q

bench: env
	$(PY) bench/cse.py
	$(PY) bench/superpixels.py
	$(PY) bench/attribution.py

lint: env
	$(VENV)/bin/ruff check src tests bench

typecheck: env
	$(VENV)/bin/mypy src

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
