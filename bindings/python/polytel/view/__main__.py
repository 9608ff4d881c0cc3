"""python -m polytel.view DIR... [-o trace.html]: see polytel.view."""
import sys

from . import main

sys.exit(main())
