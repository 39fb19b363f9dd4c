#!/usr/bin/env python3
"""tlsframe comparison benchmark: tlsframesink vs tcpserversink vs stunnel.

The entry point of the tlsframebench package (bench/tlsframebench/): the runner is
tlsframebench.cli, the table tlsframebench.report. See bench/README.md.

  python3 bench/run.py [--quick] [--out DIR] [--table RESULTS.json]

Standard library only.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tlsframebench.cli import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
