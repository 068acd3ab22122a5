"""The ROS 2 layer on the runtime: node wiring, frame pipeline, services, message conversions,
diagnostics."""
