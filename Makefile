# The two commands of the README: `make reproduce` and `make test`. Both create the virtual environment
# (.venv) on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= cpu

.PHONY: venv data reproduce test lint format bench clean-data lab

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned: this exact build is the one the study was measured with
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(BIN)/python -m affectlib generate --reuse --profile $(PROFILE) --out data/embedded/$(PROFILE)-seed0

reproduce: data
	$(BIN)/python -m affectlib reproduce --profile $(PROFILE) --out results

# nbval runs the stored notebooks on the smoke profile; their results go to build/, not results/
test: $(STAMP)
	AFFECTLIB_PROFILE=smoke AFFECTLIB_RESULTS=$(CURDIR)/build/test-results \
	$(BIN)/python -m pytest tests notebooks --nbval-lax \
	  --nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider

# the notebooks in JupyterLab, with the project's environment as their kernel (installs the `lab` extra)
lab: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,lab]'
	$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff format --check affectlib tests benchmarks notebooks
	$(BIN)/ruff check affectlib tests benchmarks notebooks

format: $(STAMP)
	$(BIN)/ruff format affectlib tests benchmarks notebooks
	$(BIN)/ruff check --fix affectlib tests benchmarks notebooks

clean-data:
	rm -rf data/embedded build/test-results
