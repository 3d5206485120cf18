"""Entry point of ``python -m fer_core``."""

import sys

from fer_core.cli import main

sys.exit(main(record_archive=True))
