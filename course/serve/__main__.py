"""``python -m course.serve MODEL_DIR --port P``: see :mod:`course.serve` and ``--help``."""

from course.serve.server import main

raise SystemExit(main())
