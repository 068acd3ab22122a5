"""yolz_ros: zero-shot object detection from a few reference views, for ROS 2.

The runtime (this package) never imports torch. Generated interfaces live beside it as
`yolz_ros.msg` / `yolz_ros.srv` once the package is built (colcon, or scripts/bootstrap.sh).
"""
# When the source tree is first on sys.path (development, tests), also search the installed
# copy, which holds the generated msg/srv modules.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
