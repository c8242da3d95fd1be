"""`python -m orangecontrib.deepimage.cli ...`: the same as the `deepimage` command
(torchrun starts training processes this way)."""
import sys

from . import main

sys.exit(main())
