"""``python -m optaxswap demo``: the same command as the ``optaxswap`` script."""

import sys

from optaxswap._cli import main

if __name__ == "__main__":
    sys.exit(main())
