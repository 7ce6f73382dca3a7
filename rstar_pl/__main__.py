import sys

from rstar_pl.cli import main

if __name__ == "__main__":
    sys.exit(main())
