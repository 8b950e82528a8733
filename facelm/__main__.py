"""``python -m facelm``: see :mod:`facelm.cli`."""
import sys

from .cli import main

sys.exit(main())
