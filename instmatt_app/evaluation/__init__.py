"""Evaluation: the IMQ metric (:mod:`.imq`), the HIM2K-style synthetic data generator
(:mod:`.synth`) and the benchmark runner (:mod:`.bench`).

Submodules are imported on demand (``from instmatt_app.evaluation import imq``) so that scoring
never pulls in the matting engine or torch.
"""
