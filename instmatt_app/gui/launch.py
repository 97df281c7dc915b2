"""Entry point of ``instmatt-app`` (the desktop application)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--selftest" in argv:  # open the bundled sample, matte it, export a PSD, exit 0 (installer check)
        from instmatt_app.selftest import main as selftest_main

        return selftest_main([a for a in argv if a != "--selftest"])
    from instmatt_app.gui.app import run

    return run(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
