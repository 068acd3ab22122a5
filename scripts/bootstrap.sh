#!/usr/bin/env bash
# One idempotent set-up for machines without apt ROS: a venv with the pinned ROS 2 wheels of
# ROS_DISTRO (kilted, the default: .venv; jazzy: .venv-jazzy) and the Python dependencies, the
# wheels' CMake exports fixed for this interpreter, the wire-compatible vision_msgs interfaces
# (compat/vision_msgs, only where vision_msgs is not installed) and this package's interfaces
# built and installed into the venv with CMake, and the ROS 2 tools (ros2 launch/run/..., launch_testing)
# from ../shared/vendor/ros2 where it is there. Quick when nothing changed.
# Writes nothing outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
. scripts/distro.sh
if [ -z "$yolz_venv_name" ]; then
  echo "[bootstrap] ROS_DISTRO=$yolz_distro: the pip environment exists for kilted and jazzy" \
       "only (PyPI has no other ROS 2 wheels); on a ROS system build with colcon (README)" >&2
  exit 2
fi
venv="$root/$yolz_venv_name"
build="$root/$yolz_build_name"
py="${PYTHON:-python3}"
logs="$root/$yolz_build_name"  # build.log / build-jazzy.log (+ .vision_msgs.log)

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv (ROS 2 $yolz_distro)"
  "$py" -m venv "$venv"
fi

# 1. Python packages, reinstalled only when the requirement files change.
stamp="$venv/.requirements.sha256"
want="$(cat "$yolz_ros_requirements" requirements.txt requirements-baselines.txt \
  requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing Python packages for $yolz_distro (about a minute on a fresh machine)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$yolz_ros_requirements" -r requirements.txt -r requirements-dev.txt 2>&1 \
    | { grep -v "is ignored: it is neither" || true; }
  # XFeat (a baseline) would pull an unpinned torch: install it without dependencies.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    -r requirements-baselines.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
  echo "$want" > "$stamp"
fi

# 2. The message wheels' CMake exports name include dirs of the machine they were built on;
#    point them at this interpreter's headers and NumPy's (inside the venv only).
"$venv/bin/python" scripts/fix_wheel_cmake.py "$venv"

. scripts/env.sh
cmake_build() {  # source folder, build folder, log
  if [ ! -f "$2/CMakeCache.txt" ]; then
    cmake -S "$1" -B "$2" -DCMAKE_INSTALL_PREFIX="$venv" \
      -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF >"$3" 2>&1 \
      || { cat "$3"; exit 1; }
  fi
  cmake --build "$2" -j "$(nproc)" >>"$3" 2>&1 || { tail -50 "$3"; exit 1; }
  cmake --install "$2" >>"$3" 2>&1 || { tail -50 "$3"; exit 1; }
}

# 3. vision_msgs: the real package when it is installed, else our wire-compatible definitions.
compat_marker="Wire-compatible subset of vision_msgs"
if [ -f "$venv/share/vision_msgs/package.xml" ] && \
    ! grep -q "$compat_marker" "$venv/share/vision_msgs/package.xml"; then
  :  # a real vision_msgs is installed in the venv: use it
else
  cmake_build "$root/compat/vision_msgs" "$build/vision_msgs_compat" \
    "$logs.vision_msgs.log"
fi

# 4. This package's interfaces + the Python package, into the venv (incremental).
cmake_build "$root" "$build" "$logs.log"

# 5. The ROS 2 tools a ROS user runs: launch, launch_ros, the `ros2` command with its verbs
#    (launch, run, pkg, node, service, topic, param, lifecycle, interface), launch_testing and
#    rosidl_runtime_py. PyPI has no wheels of them; they are pure Python, and
#    ../shared/vendor/ros2/<distro>/ holds their source (its README: upstream commits, licence).
#    Their PyPI dependencies are pinned in the ROS requirement file (step 1). composition_interfaces
#    (launch_ros imports it) is a message package: generated with rosidl and installed into the
#    venv by CMake, like this package's interfaces. The Python packages are built from a copy
#    (pip writes build/ and *.egg-info into the folder it builds) and installed with pip, so that
#    their entry points (the ros2 verbs, launch_testing's pytest plugin) are registered; again
#    only when the vendored source changed. On apt ROS none of this runs: they come with ROS.
tools_src="$root/../shared/vendor/ros2/$ROS_DISTRO"
if [ -d "$tools_src" ]; then
  tools_src="$(cd "$tools_src" && pwd)"
  cmake_build "$tools_src/composition_interfaces" "$build/composition_interfaces" \
    "$logs.composition_interfaces.log"
  tools_stamp="$venv/.ros2_tools.sha256"
  tools_want="$( (cd "$tools_src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$tools_stamp" 2>/dev/null)" != "$tools_want" ]; then
    echo "[bootstrap] installing the ROS 2 tools (ros2 launch, ros2 run, launch_testing, ...)" \
         "from $tools_src"
    copy="$build/ros2_tools"
    rm -rf "$copy" && mkdir -p "$copy"
    for pkg in "$tools_src"/*/; do
      [ -f "$pkg/setup.py" ] && cp -r "$pkg" "$copy/"
    done
    chmod -R u+w "$copy"  # shared/ may come without write bits (CI)
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      --no-build-isolation "$copy"/*/ 2>&1 | { grep -v "is ignored: it is neither" || true; }
    rm -rf "$copy"
    echo "$tools_want" > "$tools_stamp"
  fi
else
  echo "[bootstrap] ../shared/vendor/ros2/$ROS_DISTRO is absent (a plain clone): the ROS 2 tools" \
       "(ros2 launch, ros2 run, ros2 service/topic/param/lifecycle, launch_testing) are not" \
       "installed, and the tests that need them skip (under CI they fail)" >&2
fi
echo "[bootstrap] ready ($ROS_DISTRO): . scripts/env.sh"
