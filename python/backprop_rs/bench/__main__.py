"""``python -m backprop_rs.bench [flags]``: the same run as ``backprop-rs bench [flags]``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
