"""``python -m facelm.detect calibrate --data DIR``: see :mod:`facelm.detect.calibrate`."""
import sys

from .calibrate import main

sys.exit(main())
