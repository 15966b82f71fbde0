"""`python -m bench`: the same as `voxkey bench`."""

from bench.cli import main

main()
