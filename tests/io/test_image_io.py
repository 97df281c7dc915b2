import numpy as np
import pytest
from PIL import Image

from instmatt_app.io.image_io import ImageLoadError, load_image, load_image_info


@pytest.fixture()
def photo(data_dir):
    return np.asarray(Image.open(data_dir / "qualitative/images/zidane.jpg").convert("RGB"))[::4, ::4].copy()


def test_exif_orientation_is_applied(tmp_path, photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = tmp_path / "rot.jpg"
    Image.fromarray(photo).save(p, exif=exif, quality=95)
    info = load_image_info(p)
    assert info.exif_transposed
    assert info.rgb.shape == (photo.shape[1], photo.shape[0], 3)  # width and height swapped


def test_grey_cmyk_16bit_and_alpha_inputs(tmp_path, photo):
    grey = Image.fromarray(photo).convert("L")
    grey.save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == photo.shape and (g[..., 0] == g[..., 1]).all()

    Image.fromarray(photo).convert("CMYK").save(tmp_path / "c.jpg")
    c = load_image(tmp_path / "c.jpg")
    assert c.shape == photo.shape and np.abs(c.astype(int) - photo).mean() < 12

    g16 = (np.asarray(grey).astype(np.uint16) * 257)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    info = load_image_info(tmp_path / "g16.png")
    assert info.rgb.dtype == np.uint8 and np.abs(info.rgb[..., 0].astype(int) - np.asarray(grey)).max() <= 1

    rgba = np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    info = load_image_info(tmp_path / "a.png")
    assert info.had_alpha and (info.rgb == photo).all()


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
])
def test_bad_files_give_clear_messages(tmp_path, content, needle):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageLoadError) as err:
        load_image(p)
    assert needle in str(err.value) and "bad.jpg" in str(err.value)


def test_truncated_jpeg_and_missing_file(tmp_path, data_dir):
    data = (data_dir / "qualitative/images/bus.jpg").read_bytes()
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(p)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
