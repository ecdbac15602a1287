"""``python -m minerrestore`` runs the command line."""

import sys

from minerrestore.cli import main

sys.exit(main())
