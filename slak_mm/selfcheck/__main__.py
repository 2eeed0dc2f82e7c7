"""``python -m slak_mm.selfcheck``: see :mod:`slak_mm.selfcheck`."""
import sys

from slak_mm.fileio import WriteFailedError
from . import main

try:
    sys.exit(main())
except WriteFailedError as err:  # the report (a full disk): one line
    sys.exit(f'error: {err}')
