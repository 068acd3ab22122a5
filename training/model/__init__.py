"""The yolz v2 model: the frozen Lite0 backbone, the trained match head, its losses, ONNX export."""
