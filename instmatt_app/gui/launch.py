"""Entry point of ``instmatt-app`` (the desktop application)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from instmatt_app.gui.app import run
    except ModuleNotFoundError as exc:
        if exc.name != "instmatt_app.gui.app":
            raise
        print("The desktop app is not built yet; use the `instmatt` command line.", file=sys.stderr)
        return 1
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
