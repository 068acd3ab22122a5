"""Training side of yolz_ros (torch), three parts and one loop:

    data/        the real-object benchmark and training episodes (realbench), their sources
                 (products, photos, stamps), the cell rule (episodes), frozen-backbone features
                 (features), the RGB-D demo scenes (depth_scene)
    model/       the frozen Lite0 backbone, the trained match head (match), losses, ONNX export
    train.py     the training loop (configs/*.yaml)
    evaluation/  benchmark evaluation and metrics, the classical baselines and the training-free
                 probe, the comparison report, the model report, the RGB-D find-and-locate check

It imports nothing of yolz_ros but yolz_ros.runtime (the preprocessing it shares with the robot).
"""
