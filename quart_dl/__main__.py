"""``python -m quart_dl`` is the ``quart-dl`` command."""

from .cli import main

raise SystemExit(main())
