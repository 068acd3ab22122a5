"""The runtime: model folder, Detector, backends, object tokens, object store and archives,
image checks, depth maths. Imports neither rclpy nor torch."""
