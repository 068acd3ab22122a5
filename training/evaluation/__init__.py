"""Measuring models: the real-object benchmark evaluation, metrics, baselines, the comparison."""
