"""``python -m notif.cli``: the ``notif`` command."""
import sys

from . import main

sys.exit(main())
