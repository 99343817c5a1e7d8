"""`python -m memorygraph` is the `memorygraph` command."""

import sys

from memorygraph.cli import main

sys.exit(main())
