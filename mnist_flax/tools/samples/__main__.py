"""Runs the sample-picture command: ``python -m mnist_flax.tools.samples DIR [--kind K]``."""

import sys

from mnist_flax.tools.samples.cli import main

sys.exit(main())
