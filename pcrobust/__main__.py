"""``python -m pcrobust``, as ``torchrun -m pcrobust evaluate ...`` starts each rank."""

import sys

from pcrobust.cli import main

sys.exit(main())
