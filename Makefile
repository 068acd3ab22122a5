# `make demo` and `make test` are the two commands a user needs; each sets itself up
# (scripts/bootstrap.sh: venv, pinned wheels, CMake build of the interfaces).
# ROS_DISTRO=jazzy selects the Jazzy wheels (.venv-jazzy, build-jazzy/); default: Kilted.
# The rest is the training pipeline (the default model models/yolz_tokens):
#   make realbench -> make data -> make train -> make export -> make evaluate -> make compare
SHELL := /bin/bash
ENV := . scripts/env.sh &&
CONFIG ?= training/configs/match_cpu.yaml
RUN ?= runs/$(basename $(notdir $(CONFIG)))
MODEL ?= models/yolz_tokens
TRAIN_EPISODES ?= 600

.PHONY: setup lint test demo soak realbench data train export data-v4 ablation-v4 v4-ft \
	v4-frozen-model \
	evaluate compare ablation \
	benchmark depth-scene evaluate-depth clean test-fast test-unit test-ros test-training \
	test-system colcon-test
setup:
	@bash scripts/bootstrap.sh

lint: setup
	@$(ENV) ruff check . && echo "[lint] ruff: clean"

# Tests in tiers, one folder each: tests/unit (no ROS, no torch: tests/unit/conftest.py fails
# the run when either is imported), tests/ros (real DDS), tests/training (torch), tests/system
# (soak, demo, colcon). `make test` (CI) = lint + every tier, the unit tier in a run of its own
# so that its import check is on; `make test-fast` = the unit tier (well under a minute).
# PYTEST_ARGS passes options on, e.g. make test-ros PYTEST_ARGS="-k node -x".
PYTEST_ARGS ?=
PYTEST := python -m pytest -q $(PYTEST_ARGS)
test: setup lint
	@$(ENV) status=0 && { $(PYTEST) tests/unit || status=$$?; \
	  $(PYTEST) tests/ros tests/training tests/system || status=$$?; exit $$status; }

test-fast: test-unit

test-unit: setup
	@$(ENV) $(PYTEST) tests/unit

test-ros: setup
	@$(ENV) $(PYTEST) tests/ros

test-training: setup
	@$(ENV) $(PYTEST) tests/training

test-system: setup
	@$(ENV) $(PYTEST) tests/system

# colcon build + colcon test (the unit and ros tiers) + colcon test-result, as a ROS user would,
# with colcon from PyPI (scripts/colcon_test.sh; workspace build-colcon/ install-colcon/
# log-colcon/). tests/system/test_colcon.py runs it inside `make test`.
colcon-test: setup
	@bash scripts/colcon_test.sh

demo: setup
	@$(ENV) python -m tools.demo

# Soak and fault run against the node (camera at 30 Hz, concurrent register/remove/list, kill -9
# mid-write, bad input); JSON report in out/soak/report.json. MINUTES=10 by default.
MINUTES ?= 10
SOAK_ARGS ?=
soak: setup
	@$(ENV) python -m tools.soak --minutes $(MINUTES) --out out/soak $(SOAK_ARGS)

# The real-object benchmark (deterministic; val decides, test reports): textured products and
# photo cut-outs on real photographs, 640x480. Fetches its photo packages once into data/cache.
realbench: setup
	@$(ENV) python -m training.data.realbench --split val --episodes 30 && \
	  python -m training.data.realbench --split test --episodes 50

# Training data: frozen-backbone features of the val benchmark and of TRAIN_EPISODES training
# episodes (resumable; 600 took 45 min in 2 processes with the CPU shared, renders included).
data: realbench
	@$(ENV) python -m training.data.features --split val --from-bench data/realbench/val \
	  --out data/features/val && \
	  python -m training.data.features --split train --episodes $(TRAIN_EPISODES) \
	  --out data/features/train

train: setup
	@$(ENV) python -m training.train --config $(CONFIG) --out $(RUN) --resume

# ONNX + model.json of $(RUN)'s best checkpoint (with its box head where it trained one),
# parity-checked against torch; GrabCut for views without alpha.
export: setup
	@$(ENV) python -m training.model.export --run $(RUN) --out $(MODEL) --no-alpha grabcut

# Detector v4 (issue 25; the report's "v4 ablation"): Lite0 block-7 features (the input of the
# trainable blocks 8-10) of val and of V4_EPISODES training episodes -- resumable, episodes on disk
# are kept; 5,474 took 1.9 h and 20 GB (3.7 MB each, fp16) on the shared 2 cores -- then each
# config of training/configs/v4 trained in resumable chunks (`make ablation-v4` again goes on
# where it stopped), exported to out/v4/<config> and evaluated through the runtime on val and
# test (again only when best.pt is newer than that evaluation), all collected in
# $(MODEL)/ablation_v4.json. The _12k configs are the same runs on all 12,000 episodes; the _1k
# pair asks whether blocks 5-10 (a block-4 cache of episodes 0-999) beat blocks 8-10.
V4_EPISODES ?= 12000
# episodes 0..5473 are products and tuxpaint stamps only; the rest add the textured sources
V4_BASE_EPISODES := 5474
V4_SOURCES ?= sweethome:4,gcompris:2,robosuite:1,outdoor:0.2
V4_RUNS ?= frozen blocks8_10_ft blocks8_10 frozen_12k blocks8_10_12k blocks8_10_1k blocks5_10_1k
# the last commit that shipped v3: its model is the ablation's first row
V3_COMMIT := 42b5073^
# the commit that shipped v4's frozen-backbone model: blocks8_10_ft starts from its heads
V4_FROZEN_COMMIT := 42b5073
data-v4: realbench
	@$(ENV) python -m training.data.features --split val --from-bench data/realbench/val \
	  --out data/features_b7/val --block 7 && \
	  python -m training.data.features --split train --episodes $(V4_BASE_EPISODES) \
	  --small-prob 0.3 --out data/features_b7/train --block 7 && \
	  python -m training.data.features --split train --start $(V4_BASE_EPISODES) \
	  --episodes $(V4_EPISODES) --small-prob 0.3 --sources $(V4_SOURCES) --out data/features_b7/train --block 7 && \
	  python -m training.data.features --split val --from-bench data/realbench/val \
	  --out data/features_b4/val --block 4 && \
	  python -m training.data.features --split train --episodes 1000 --small-prob 0.3 \
	  --out data/features_b4/train --block 4

v4-frozen-model:
	@mkdir -p out/v4/frozen_model && for f in model.json embedder.onnx detector.onnx; do \
	  git show $(V4_FROZEN_COMMIT):models/yolz_tokens/$$f > out/v4/frozen_model/$$f || exit 1; done

# blocks8_10_ft alone, from nothing, in one session (fresh machine, 2 cores: ~2 h): block-7
# features of val and of training episodes 0-1999 in two processes, the run, its export and
# its evaluation on val and test. `make ablation-v4` afterwards collects it with the rest.
v4-ft: realbench v4-frozen-model
	@$(ENV) F="python -m training.data.features --small-prob 0.3 --block 7" && \
	  $$F --split val --from-bench data/realbench/val --out data/features_b7/val && \
	  { $$F --split train --episodes 1000 --out data/features_b7/train & first=$$!; \
	    $$F --split train --start 1000 --episodes 2000 --out data/features_b7/train && \
	    wait $$first; } && \
	  python -m training.train --config training/configs/v4/blocks8_10_ft.yaml \
	    --out runs/v4/blocks8_10_ft --resume && \
	  python -m training.model.export --run runs/v4/blocks8_10_ft --out out/v4/blocks8_10_ft \
	    --name yolz_v4_blocks8_10_ft --no-alpha grabcut && \
	  for split in val test; do python -m training.evaluation.evaluate --model out/v4/blocks8_10_ft \
	    --split $$split --threads 1 --out out/v4/eval/blocks8_10_ft/$$split > /dev/null || exit 1; done

ablation-v4: data-v4 v4-frozen-model
	@$(ENV) mkdir -p out/v4/v3_model && for f in model.json embedder.onnx detector.onnx; do \
	  git show $(V3_COMMIT):models/yolz_tokens/$$f > out/v4/v3_model/$$f || exit 1; done && \
	  for split in val test; do [ -f out/v4/eval/v3/$$split/evaluation_real.json ] || \
	    python -m training.evaluation.evaluate --model out/v4/v3_model --split $$split \
	      --threads 1 --out out/v4/eval/v3/$$split > /dev/null || exit 1; done && \
	  for run in $(V4_RUNS); do \
	  python -m training.train --config training/configs/v4/$$run.yaml --out runs/v4/$$run \
	    --resume && \
	  { [ out/v4/eval/$$run/test/evaluation_real.json -nt runs/v4/$$run/best.pt ] || { \
	  python -m training.model.export --run runs/v4/$$run --out out/v4/$$run --name yolz_v4_$$run \
	    --no-alpha grabcut && \
	  for split in val test; do python -m training.evaluation.evaluate --model out/v4/$$run \
	    --split $$split --threads 1 --out out/v4/eval/$$run/$$split > /dev/null || exit 1; done; \
	  }; } || exit 1; done && \
	  python -m training.evaluation.ablation_v4 --out $(MODEL)/ablation_v4.json \
	    --row "v3 (shipped before v4)=out/v4/v3_model:out/v4/eval/v3" \
	    $(foreach run,$(V4_RUNS),--row "$(run)=runs/v4/$(run):out/v4/eval/$(run)") && \
	  python -m training.evaluation.model_report --model $(MODEL) > /dev/null

# v3's ablations (training/configs/v3_ablation; the report's "v3 ablations" section): more
# episodes, small instances, stride-8 cells, presence by layout, and a full-schedule candidate
# on all that data. Resumable; ~2 h on 2 cores (features ~1 h, runs 7-20 min each). The
# candidate rows of ablation_v3.json had v3's box head attached (a trainer of its own then, since
# folded into training/train.py); exported here they have none.
ABLATION := training/configs/v3_ablation
ablation: data
	@$(ENV) F="python -m training.data.features" && \
	  $$F --split val --episodes 30 --seed 20261201 --benchmark-config --out data/features/val \
	    --stride8 data/features8/val && \
	  $$F --split train --episodes 400 --out data/features/train --stride8 data/features8/train && \
	  $$F --split train --start 400 --episodes 800 --out data/features/train && \
	  $$F --split train --start 400 --episodes 800 --small-prob 0.5 --out data/features/train_small && \
	  $$F --split test --from-bench data/realbench/test --out data/features/test && \
	  $$F --split test --episodes 50 --seed 20261202 --benchmark-config --out data/features/test \
	    --stride8 data/features8/test && \
	  for run in base more small fine; do \
	    python -m training.train --config $(ABLATION)/$$run.yaml --out runs/v3_ablation/$$run \
	      --resume || exit 1; done && \
	  python -m training.train --config training/configs/match_small_cpu.yaml \
	    --out runs/match_small_cpu --resume && \
	  for split in val test; do \
	    python -m training.evaluation.presence_layout --run runs/v3_ablation/base \
	      --features data/features/$$split --out runs/v3_ablation/layout_$$split.json \
	      || exit 1; done && \
	  for size in "480 640" "720 960"; do \
	    tag=$${size/ /x}; cand=out/candidate/$$tag; \
	    python -m training.model.export --run runs/match_small_cpu --out $$cand --name yolz_candidate \
	      --scene-size $$size --no-alpha grabcut && \
	    python -m training.evaluation.evaluate --model $$cand --split test --threads 1 \
	      --out docs/ablation_v3/candidate_$$tag || exit 1; done && \
	  python -m training.evaluation.ablation --runs runs/v3_ablation --candidate runs/match_small_cpu \
	    --layout runs/v3_ablation/layout_val.json runs/v3_ablation/layout_test.json \
	    --runtime "shipped=$(MODEL)/evaluation_real.json" \
	      "candidate 480x640=docs/ablation_v3/candidate_480x640/evaluation_real.json" \
	      "candidate 720x960=docs/ablation_v3/candidate_720x960/evaluation_real.json" \
	    --out $(MODEL)/ablation_v3.json && \
	  python -m training.evaluation.model_report --model $(MODEL) > /dev/null

# The real-object benchmark (test split) -> $(MODEL)/evaluation_real.{json,md,png}.
evaluate: setup
	@$(ENV) python -m training.evaluation.evaluate --model $(MODEL) --split test

# $(MODEL) against the baselines on the same test episodes -> docs/comparison (the retired v1
# model's row is printed from training/evaluation/frozen_rows.json, not re-run).
compare: setup
	@$(ENV) python -m training.evaluation.compare --model $(MODEL) --split test --out docs/comparison

# The RGB-D demo scene of the held-out product (colour, 16-bit mm depth, camera_info.yaml,
# truth.json with the true 3D centres, 8 views); prints the camera_player and register commands.
depth-scene: setup
	@$(ENV) python -m training.data.depth_scene --out out/depth_scene

# The node's find-and-locate on both RGB-D scenes (other products around the target, and its
# same-shape siblings): found rate, false alarms, 3D error -> docs/depth_3d*.json.
evaluate-depth: depth-scene
	@$(ENV) python -m training.data.depth_scene --out out/depth_scene_siblings --siblings && \
	  python -m training.evaluation.evaluate_depth --scene out/depth_scene --out docs/depth_3d.json && \
	  python -m training.evaluation.evaluate_depth --scene out/depth_scene_siblings \
	    --out docs/depth_3d_siblings.json

benchmark: setup
	@$(ENV) python -m tools.benchmark --model $(MODEL) --out docs/benchmark_cpu.json

clean:
	rm -rf build build.log build.vision_msgs.log .venv build-jazzy build-jazzy.log \
	  build-jazzy.vision_msgs.log .venv-jazzy .venv-colcon build-colcon* install-colcon* \
	  log-colcon*
