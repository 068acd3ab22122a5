"""Training data: the real-object benchmark and episodes, their sources, and their features."""
