# The ROS 2 distribution of the pip environment, from ROS_DISTRO (default kilted), and its venv,
# build folder and wheel list. Sourced by scripts/bootstrap.sh and scripts/env.sh.
#   kilted: .venv        build/         requirements-ros.txt        (unprefixed ros-* wheels)
#   jazzy:  .venv-jazzy  build-jazzy/   requirements-ros-jazzy.txt  (ros-jazzy-* wheels)
yolz_distro="${ROS_DISTRO:-kilted}"
case "$yolz_distro" in
  kilted) yolz_venv_name=.venv; yolz_build_name=build; yolz_ros_requirements=requirements-ros.txt ;;
  jazzy) yolz_venv_name=.venv-jazzy; yolz_build_name=build-jazzy
         yolz_ros_requirements=requirements-ros-jazzy.txt ;;
  *) yolz_venv_name="" ;;
esac
