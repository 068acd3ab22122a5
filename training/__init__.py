"""Training side of yolz_ros: data, model, losses, training, evaluation and ONNX export (torch)."""
