"""``python -m py_host``: see :mod:`py_host._cli`."""

from ._cli import main

raise SystemExit(main())
