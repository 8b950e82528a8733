"""``python -m facelm.detect calibrate --data DIR`` (:mod:`facelm.detect.calibrate`) and
``python -m facelm.detect evaluate --wider DIR [--data DIR]`` (:mod:`facelm.detect.benchmark`)."""
import sys

from .calibrate import main

sys.exit(main())
