"""`python -m service.cli`: the same `fvlab` command (the demo starts its children this way)."""

from service.cli import main

main()
