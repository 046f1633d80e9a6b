"""`python -m lenet_core.book render ...`: the same as `python -m lenet_core book render ...`."""

import sys

from ..cli import main

sys.exit(main(["book", *sys.argv[1:]]))
