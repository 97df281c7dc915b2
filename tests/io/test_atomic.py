import os
import stat

import pytest

from instmatt_app.io.atomic import atomic_open, atomic_write_bytes


def test_new_file_gets_umask_permissions_and_old_file_survives_failure(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"first")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    os.chmod(p, 0o640)
    with pytest.raises(RuntimeError):
        with atomic_open(p, "wb") as fh:
            fh.write(b"half")
            raise RuntimeError("disk full")
    assert p.read_bytes() == b"first"
    assert [f.name for f in tmp_path.iterdir()] == ["a.bin"]  # no temporary left behind
    atomic_write_bytes(p, b"second")
    assert p.read_bytes() == b"second" and stat.S_IMODE(p.stat().st_mode) == 0o640
