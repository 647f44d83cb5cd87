# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv if absent and install everything, Fashion-MNIST included.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PyTorch build installed into the venv; pyproject.toml itself only asks for torch>=2.1,
# so on another machine `make TORCH="torch torchvision" ...` takes whatever pip offers.
TORCH ?= torch==2.14.1 torchvision==0.29.1
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test install data browser lint clean-venv bench-deps

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST: Debian's package where apt is available (root), else the official download.
data: install
	@if $(BIN)/genbench data | grep -q '^fashion_mnist  *found'; then \
		echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; then \
		echo "Fashion-MNIST: installed by apt in $(FMNIST)"; \
	else \
		$(BIN)/genbench data --download fashion_mnist; \
	fi

# Headless Chromium for the report's browser test: Debian's package where apt is available (root);
# elsewhere that one test skips.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "Chromium: found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; then \
		echo "Chromium: installed by apt"; \
	else \
		echo "Chromium: not available (the browser test of the report will skip)"; \
	fi

# the demo's 20 minutes count from `make demo` itself: the time spent installing is passed on as --spent
DEMO_T0 := $(shell date +%s)
demo: data
	$(BIN)/genbench demo --spent $$(( $$(date +%s) - $(DEMO_T0) ))

test: data browser
	$(BIN)/python -m pytest

# Peers for the benchmarks (diffusers, denoising-diffusion-pytorch, torchcfm): the '.[bench]' extra,
# constrained to the venv's torch/torchvision so that pip can never replace them.
bench-deps: install
	printf '%s\n' $(TORCH) > $(VENV)/bench-constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/bench-constraints.txt -e '.[bench]'
	$(BIN)/python -m pip show torch | grep '^Version'

lint: install
	$(BIN)/ruff check src tests benchmarks

clean-venv:
	rm -rf $(VENV)
