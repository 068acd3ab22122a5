#!/usr/bin/env bash
# `make colcon-test`: build and test this package with colcon, as a ROS user would, in the pip
# environment of ROS_DISTRO (kilted by default, or jazzy; scripts/bootstrap.sh sets it up):
#
#   colcon build --packages-select yolz_ros     # BUILD_TESTING on: tests/unit, tests/ros registered
#   . install-colcon/setup.sh
#   colcon test --packages-select yolz_ros
#   colcon test-result --verbose                # the exit code
#
# colcon comes from PyPI (requirements-colcon.txt) in a venv of its own, .venv-colcon (see that
# file for why); CMake and the tests run with the ROS venv's Python. The workspace folders are
# this script's own and git-ignored: build-colcon/, install-colcon/, log-colcon/ (with -jazzy for
# Jazzy), so the bootstrap's build/ and what it installed into the venv are never touched.
# Writes nothing outside the repository. Incremental: a second run rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
. scripts/distro.sh
if [ -z "$yolz_venv_name" ]; then
  echo "[colcon-test] ROS_DISTRO=$yolz_distro: the pip environment exists for kilted and jazzy only;" \
       "on a ROS system run colcon itself (README)" >&2
  exit 2
fi
suffix=""
[ "$yolz_distro" = kilted ] || suffix="-$yolz_distro"
build_base="build-colcon$suffix"
install_base="install-colcon$suffix"
log_base="log-colcon$suffix"

# 1. colcon, reinstalled only when requirements-colcon.txt changes.
tools="$root/.venv-colcon"
stamp="$tools/.requirements.sha256"
want="$(sha256sum requirements-colcon.txt | cut -d' ' -f1)"
if [ ! -x "$tools/bin/colcon" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[colcon-test] installing colcon into .venv-colcon (requirements-colcon.txt)"
  [ -x "$tools/bin/python" ] || "${PYTHON:-python3}" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r requirements-colcon.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
  echo "$want" > "$stamp"
fi
colcon="$tools/bin/colcon"

# 2. The ROS venv (PATH, AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH, LD_LIBRARY_PATH, ...).
. scripts/env.sh
ws=(--base-paths "$root" --packages-select yolz_ros --build-base "$build_base"
    --install-base "$install_base")

echo "[colcon-test] colcon build ($ROS_DISTRO) -> $build_base/, $install_base/"
"$colcon" --log-base "$log_base" build "${ws[@]}" --event-handlers console_cohesion- \
  --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=ON

# 3. Test against the install, as after `source install/setup.bash`. TIERS (default "unit ros")
#    selects the registered tests (ctest -R); results of earlier runs are removed first, so
#    test-result reports this run only.
tiers="${TIERS:-unit ros}"
select="^($(echo $tiers | tr ' ' '|'))_tests\$"
set +u  # colcon's setup scripts read unset variables
. "$install_base/setup.sh"
set -u
rm -rf "$build_base/yolz_ros/test_results"
echo "[colcon-test] colcon test: $tiers"
"$colcon" --log-base "$log_base" test "${ws[@]}" --event-handlers console_cohesion+ \
  --ctest-args -R "$select"
"$colcon" test-result --test-result-base "$build_base/yolz_ros" --verbose
