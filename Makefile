# Two commands do everything: `make train` and `make test`.
# Both bootstrap an isolated .venv (created if absent, refreshed when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: all install data train test lint format clean clean-runs

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,torch]'
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist (the four IDX .gz files in
# $(FMNIST_DIR)). Installed when missing and we may (root, or password-less sudo);
# otherwise one line says how, and training falls back to scikit-learn's digits.
FMNIST_DIR := /usr/share/datasets/fashion-mnist
FMNIST_FILE := $(FMNIST_DIR)/train-images-idx3-ubyte.gz
APT_INSTALL := env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist

data:
	@if [ -f $(FMNIST_FILE) ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  (apt-get update -qq && $(APT_INSTALL) >/dev/null) || \
	    echo "Could not install dataset-fashion-mnist; jcnn will fall back to the bundled digits."; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	  (sudo apt-get update -qq && sudo $(APT_INSTALL) >/dev/null) || \
	    echo "Could not install dataset-fashion-mnist; jcnn will fall back to the bundled digits."; \
	else \
	  echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' (falling back to digits)."; \
	fi

# The main job: the default config on Fashion-MNIST (digits if it cannot be had).
# `make train` resumes from runs/default/checkpoints; `make clean-runs` starts over.
WORKDIR ?= runs/default
train: $(STAMP) data
	$(BIN)/jcnn train --config=default --workdir=$(WORKDIR)
	$(BIN)/jcnn eval --workdir=$(WORKDIR)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint data
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-runs:
	rm -rf runs

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
