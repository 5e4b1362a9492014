"""``python -m hone`` runs the CLI."""

from hone.cli import main

raise SystemExit(main())
