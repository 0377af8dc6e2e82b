"""``python -m helpers.grade``: see the package docstring."""

import sys

from helpers.grade.report import main

sys.exit(main())
