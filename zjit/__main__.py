"""``python -m zjit`` runs the command line."""

from zjit.cli import main

raise SystemExit(main())
