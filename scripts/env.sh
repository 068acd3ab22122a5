# Environment for the repository's venv with the PyPI ROS 2 wheels: .venv (Kilted, the default)
# or, with ROS_DISTRO=jazzy, .venv-jazzy. Source it from the repository root:  . scripts/env.sh
# It sets what `import rclpy` would otherwise set by re-executing Python (ros_wheels_bootstrapper),
# so test runners and subprocesses are not re-executed.
_yolz_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
. "$_yolz_root/scripts/distro.sh"
export ROS_DISTRO="$yolz_distro"
export VIRTUAL_ENV="$_yolz_root/${yolz_venv_name:-.venv}"
export PATH="$VIRTUAL_ENV/bin:$PATH"
_yolz_site="$("$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
_yolz_libs="$VIRTUAL_ENV/lib"
for _d in "$_yolz_site"/ros_*.libs; do [ -d "$_d" ] && _yolz_libs="$_yolz_libs:$_d"; done
export LD_LIBRARY_PATH="$_yolz_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# The repository's sources first (the generated msg/srv stay importable: see yolz_ros/__init__.py).
export PYTHONPATH="$_yolz_root${PYTHONPATH:+:$PYTHONPATH}"
unset _yolz_root _yolz_site _yolz_libs _d yolz_distro yolz_venv_name yolz_build_name \
  yolz_ros_requirements
