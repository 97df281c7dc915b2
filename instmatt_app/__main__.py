import sys

from instmatt_app.cli.main import main

sys.exit(main())
