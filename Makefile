# Two entry points: `make demo` (set up, run the quickstart, compare, report)
# and `make test` (the whole suite). Everything else is a helper for those.

VENV          ?= .venv
PYTHON        := $(VENV)/bin/python
TORCH_VERSION := 2.11.0
CARGO         ?= cargo

# torch-sys finds libtorch through the venv's torch; VIRTUAL_ENV makes it
# call `python` from PATH, which is the venv's.
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV          := $(CURDIR)/$(VENV)
export PATH                 := $(CURDIR)/$(VENV)/bin:$(PATH)
export REGRESS_PYTHON       := $(CURDIR)/$(PYTHON)

.PHONY: demo test build venv lint clean-demo

venv: $(VENV)/.torch-$(TORCH_VERSION)

$(VENV)/.torch-$(TORCH_VERSION):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==$(TORCH_VERSION) numpy
	touch $@

build: venv
	$(CARGO) build --locked

demo: build
	./scripts/demo.sh target/debug/regress

test: venv
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked

lint: venv
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
