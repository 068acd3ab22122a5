# `make demo` and `make test` are the two commands a user needs; each sets itself up
# (scripts/bootstrap.sh: venv, pinned wheels, CMake build of the interfaces).
# ROS_DISTRO=jazzy selects the Jazzy wheels (.venv-jazzy, build-jazzy/); default: Kilted.
# The rest is the training pipeline: make data -> make train -> make export -> make evaluate.
SHELL := /bin/bash
ENV := . scripts/env.sh &&
CONFIG ?= training/configs/cpu_default.yaml
RUN ?= runs/$(basename $(notdir $(CONFIG)))
MODEL ?= models/yolz_lite0

.PHONY: setup lint test demo soak data train export evaluate compare benchmark clean
setup:
	@bash scripts/bootstrap.sh

lint: setup
	@$(ENV) ruff check . && echo "[lint] ruff: clean"

test: setup lint
	@$(ENV) python -m pytest -q tests

demo: setup
	@$(ENV) python scripts/demo.py

# Soak and fault run against the node (camera at 30 Hz, concurrent register/remove/list, kill -9
# mid-write, bad input); JSON report in out/soak/report.json. MINUTES=10 by default.
MINUTES ?= 10
soak: setup
	@$(ENV) python scripts/soak.py --minutes $(MINUTES) --out out/soak

# Render the PyBullet data (seeded, cached: re-running skips what exists). ~4 min on 2 cores.
data: setup
	@$(ENV) for split in train:600 val:100 test:200; do \
	  python -m training.data.render --split $${split%%:*} --scenes $${split##*:} \
	    --views-per-object 16 --view-size 96 --scene-size 256 256 || exit 1; done

train: setup
	@$(ENV) python -m training.train --config $(CONFIG) --out $(RUN) --resume

export: setup
	@$(ENV) python -m training.export --run $(RUN) --out $(MODEL)

evaluate: setup
	@$(ENV) python -m training.evaluate --model $(MODEL) --split test --scenes 200

compare: setup
	@$(ENV) python -m training.compare --model $(MODEL) --split test --scenes 100 --out docs/comparison

benchmark: setup
	@$(ENV) python -m yolz_ros.benchmark --model $(MODEL) --out docs/benchmark_cpu.json

clean:
	rm -rf build build.log build.vision_msgs.log .venv build-jazzy build-jazzy.log \
	  build-jazzy.vision_msgs.log .venv-jazzy
