"""`python -m sentiment ...` (also what `torchrun -m sentiment train ...` runs)."""

from sentiment.cli import main

main()
