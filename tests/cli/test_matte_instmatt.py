"""A user adds an official-format InstMatt checkpoint and `instmatt matte` uses it (CPU)."""
import numpy as np
import pytest
from PIL import Image

from instmatt_app.cli.main import main


@pytest.mark.parametrize("case", ["case_03"])
def test_official_postprocess_writes_what_infer_py_writes(case, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTMATT_DATA", str(tmp_path / "userdata"))
    fx = fixtures_dir / "instmatt-official-random"
    assert main(["models", "add", "instmatt", str(fx / "checkpoint.pth")]) == 0
    data = np.load(fx / f"{case}.npz")
    Image.fromarray(data["image"]).save(tmp_path / f"{case}.png")
    mdir = tmp_path / "masks" / case
    mdir.mkdir(parents=True)
    for i, m in enumerate(data["masks"]):
        Image.fromarray(m).save(mdir / f"{i:02d}.png")
    out = tmp_path / "out"
    rc = main(["matte", str(tmp_path / f"{case}.png"), "-o", str(out), "--masks", str(tmp_path / "masks"),
               "--matting", "instmatt", "--official-postprocess", "--device", "cpu", "--formats", "png", "--quiet"])
    assert rc == 0
    expected = data["out_uint8"]  # (H, W, k): the PNGs official infer.py writes
    for i in range(expected.shape[2]):
        got = np.asarray(Image.open(out / "alphas" / case / f"{i:02d}.png"))
        diff = np.abs(got.astype(int) - expected[..., i].astype(int))
        assert diff.max() == 0, f"instance {i}: {diff.max()} max, {(diff > 0).sum()} px differ"
    # auto picks the installed InstMatt weights
    out2 = tmp_path / "out2"
    assert main(["matte", str(tmp_path / f"{case}.png"), "-o", str(out2), "--masks", str(tmp_path / "masks"),
                 "--device", "cpu", "--formats", "json", "--quiet", "--refine", "cycle",
                 "--order", ",".join(str(i) for i in reversed(range(expected.shape[2])))]) == 0
    assert '"matting": "instmatt"' in (out2 / f"{case}.json").read_text()
