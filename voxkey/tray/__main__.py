"""`python -m voxkey.tray [--config FILE] [--set ...]`: the same as `voxkey tray`."""

import sys

from voxkey import cli

cli.main(["tray", *sys.argv[1:]])
