# LeNet-5, modernized. `make test` sets everything up from a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The offline dataset mirror: ../shared/data when it exists, else torchvision downloads.
DATA_MIRROR ?= $(shell [ -d ../shared/data ] && cd ../shared/data && pwd)
export DATA_MIRROR

# The book's profile: `full` is what the book publishes; every one of its runs is committed in
# results/, so `make book` on a fresh clone loads them and trains nothing.
PROFILE   ?= full
JOBS      ?=
# Test processes for `make test` (one per core of a 2-core machine).
TEST_JOBS ?= 2
# A Dask scheduler address (tcp://HOST:8786) runs the sweep's notebooks on that cluster;
# WORKER_MIRROR is the dataset mirror folder on the workers (default: they download).
SCHEDULER ?=
WORKER_MIRROR ?=
INSTALLED := $(VENV)/.installed
DATASETS  := mnist fashion_mnist cifar10

.PHONY: install data test sweep book book-test lab clean help

help:
	@echo "make install   create $(VENV) and install the project with its dev extras"
	@echo "make data      import, verify and cache the datasets (mirror: $(or $(DATA_MIRROR),none, torchvision download))"
	@echo "make test      install and prepare data when needed, then run the tests and the notebooks (nbval, smoke)"
	@echo "make sweep     execute the notebooks of PROFILE=$(PROFILE) (smoke|quick|full) into book/runs; JOBS=N at once,"
	@echo "               or SCHEDULER=tcp://HOST:8786 on a Dask cluster"
	@echo "make book      sweep PROFILE, render the summary pages, build the site into _build/html"
	@echo "make book-test build a smoke copy of the site and check it in headless Chromium"
	@echo "make lab       open the notebooks in JupyterLab"
	@echo "make clean     remove build output and caches (keeps results/ and data/)"

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# The official files of every dataset, and CIFAR-10's lossy JPEG copy, asked for by name: the
# book compares the two.
data: $(DATASETS:%=data/%.json) data/cifar10-jpeg.json

# The .json is written last by `data prepare`, so its presence means the cache is complete.
data/cifar10-jpeg.json: | $(INSTALLED)
	$(BIN)/python -m lenet_core data prepare cifar10 --copy jpeg

data/%.json: | $(INSTALLED)
	$(BIN)/python -m lenet_core data prepare $*

# The notebooks run in the smoke profile against a throwaway run store, so the
# committed store in results/ only ever holds real profiles' runs. TEST_JOBS processes share
# the tests (pytest-xdist, one thread each); a notebook's cells stay together in one of them.
test: install data
	$(BIN)/python -m pytest -n $(TEST_JOBS) --durations=20
	@store=$$(mktemp -d) && trap 'rm -rf "$$store"' EXIT && \
	LENET_PROFILE=smoke LENET_RESULTS_DIR=$$store/results LENET_CHECKPOINTS_DIR=$$store/checkpoints \
	LENET_PROGRESS=0 LENET_THREADS=1 $(BIN)/python -m pytest --nbval-lax -n $(TEST_JOBS) --dist loadscope \
	-p no:cacheprovider notebooks/

SWEEP_ARGS = --profile $(PROFILE) $(if $(JOBS),--jobs $(JOBS)) \
	$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(WORKER_MIRROR),--data-mirror $(WORKER_MIRROR))

sweep: install data
	$(BIN)/python -m lenet_core sweep $(SWEEP_ARGS)

lab: install data
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf _build .pytest_cache checkpoints book/runs book/_generated
	find . -name __pycache__ -prune -exec rm -rf {} +

# The site: sweep PROFILE (cached runs load, not retrain), render the summary pages from the
# run store into book/_generated/, build with Jupyter Book (which executes nothing).
book: install data
	$(BIN)/python -m lenet_core sweep $(SWEEP_ARGS)
	$(BIN)/python -m lenet_core book render --profile $(PROFILE)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

# Build a smoke-profile copy of the site in a temp folder and check it in headless Chromium.
book-test: install data
	$(BIN)/python -m pytest -p no:cacheprovider tests/test_book.py
