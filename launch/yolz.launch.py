"""Launch the yolz node (and optionally rviz2 showing the camera and the overlay).

    ros2 launch yolz_ros yolz.launch.py image:=/camera/color/image_raw
    ros2 launch yolz_ros yolz.launch.py image:=/camera/image_raw model_dir:=/path/model rviz:=true
    ros2 launch yolz_ros yolz.launch.py managed:=true     # a lifecycle node, for a system manager
    ros2 launch yolz_ros yolz.launch.py image:=/camera/color/image_raw use_depth:=true \
        depth:=/camera/aligned_depth_to_color/image_raw camera_info:=/camera/color/camera_info

The node runs with the FastDDS same-host profile (config/fastdds_same_host.xml: shared memory
large enough for camera frames; without it FastDDS's 512 KiB segment loses most 640x480 best-effort
frames on one host). The camera driver must use it too: export FASTRTPS_DEFAULT_PROFILES_FILE
(Fast DDS 2.x: Humble, Jazzy) or FASTDDS_DEFAULT_PROFILES_FILE (3.x: Kilted) before starting it
(docs/reliability.md). dds_profile:='' keeps FastDDS's defaults.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

try:  # launch >= 1.1 (Iron and later); LaunchConfigurationNotEquals is deprecated there
    from launch.substitutions import NotEqualsSubstitution

    def if_not_empty(name):
        return IfCondition(NotEqualsSubstitution(LaunchConfiguration(name), ""))
except ImportError:  # Humble's launch 1.0
    from launch.conditions import LaunchConfigurationNotEquals

    def if_not_empty(name):
        return LaunchConfigurationNotEquals(name, "")


# Fast DDS 2.x (Humble, Iron, Jazzy) reads FASTRTPS_..., 3.x (Kilted and later) FASTDDS_...
PROFILE_VAR = ("FASTRTPS_DEFAULT_PROFILES_FILE"
               if os.environ.get("ROS_DISTRO", "") in ("humble", "iron", "jazzy")
               else "FASTDDS_DEFAULT_PROFILES_FILE")


def generate_launch_description():
    share = get_package_share_directory("yolz_ros")
    image = LaunchConfiguration("image")
    params_file = LaunchConfiguration("params_file")
    model_dir = LaunchConfiguration("model_dir")
    backend = LaunchConfiguration("backend")
    namespace = LaunchConfiguration("namespace")
    rviz = LaunchConfiguration("rviz")
    managed = LaunchConfiguration("managed")
    use_depth = LaunchConfiguration("use_depth")
    depth = LaunchConfiguration("depth")
    camera_info = LaunchConfiguration("camera_info")
    yolz = dict(package="yolz_ros", executable="yolz_node", name="yolz", namespace=namespace,
                parameters=[params_file, {"model_dir": model_dir, "backend": backend,
                                          "use_depth": use_depth}],
                remappings=[("image", image), ("depth", depth), ("camera_info", camera_info)],
                output="screen")
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="camera topic (sensor_msgs/Image) to run on"),
        DeclareLaunchArgument("use_depth", default_value="false",
                              description="true: 3D output from depth + camera_info"),
        DeclareLaunchArgument("depth", default_value="/camera/aligned_depth_to_color/image_raw",
                              description="depth topic registered to the colour image "
                                          "(16UC1 mm or 32FC1 m)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/color/camera_info",
                              description="the colour camera's sensor_msgs/CameraInfo"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "yolz.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("model_dir", default_value="",
                              description="model folder; empty = the shipped default model"),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto | tensorrt | onnxruntime"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start rviz2 with the camera and overlay displays"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="true: a lifecycle node (configure/activate it)"),
        DeclareLaunchArgument(
            "dds_profile",
            default_value=os.environ.get(PROFILE_VAR)
            or os.path.join(share, "config", "fastdds_same_host.xml"),
            description="FastDDS profile XML for the node (and rviz); '' = FastDDS defaults"),
        SetEnvironmentVariable(PROFILE_VAR, LaunchConfiguration("dds_profile"),
                               condition=if_not_empty("dds_profile")),
        Node(**yolz, condition=UnlessCondition(managed)),
        LifecycleNode(**yolz, arguments=["--managed"], condition=IfCondition(managed)),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "config", "yolz.rviz")],
            condition=IfCondition(rviz),
            output="screen",
        ),
    ])
