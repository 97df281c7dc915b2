"""Entry script of the frozen app (PyInstaller): one executable, three faces.

* ``instmatt-studio --selftest``   -> :func:`instmatt_app.selftest.main` (exit 0 when the app works)
* ``instmatt-studio matte ...``    -> the ``instmatt`` command line (any subcommand of cli/main.py),
  also when the executable is called through a link named ``instmatt`` (``instmatt.exe``)
* ``instmatt-studio [photo ...]``  -> the desktop app (``instmatt-app``)
"""
import multiprocessing
import os
import sys


def _dispatch(argv: list[str]) -> int:
    prog = os.path.splitext(os.path.basename(sys.argv[0]))[0].lower()
    if "--selftest" in argv:
        from instmatt_app.selftest import main as selftest_main

        return selftest_main([a for a in argv if a != "--selftest"])
    from instmatt_app.cli.main import COMMANDS

    if prog == "instmatt" or (argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version"))):
        from instmatt_app.cli.main import main as cli_main

        return cli_main(argv)
    from instmatt_app.gui.launch import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch / DataLoader workers re-enter the frozen executable
    sys.exit(_dispatch(sys.argv[1:]))
