"""``python -m slak_mm.selfcheck``: see :mod:`slak_mm.selfcheck`."""
import sys

from . import main

sys.exit(main())
