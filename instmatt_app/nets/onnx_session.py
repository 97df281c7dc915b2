"""onnxruntime sessions with the right execution provider and readable failures."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["onnx_session"]


def onnx_session(model_path: str | Path, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` for ``model_path``.

    device: "cuda" uses the CUDA provider when onnxruntime has it (onnxruntime-gpu), otherwise CPU.
    Threads: at most the number of CPU cores (ORT's default spins more on small machines).
    """
    import onnxruntime as ort

    from instmatt_app.model_manager import ModelError

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: run `instmatt models install`")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(os.cpu_count() or 1, 8))
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"model file {path} could not be loaded ({str(exc).splitlines()[0][:200]}); "
                         f"run `instmatt models verify`") from None
