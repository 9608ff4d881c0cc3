"""python -m polytel.view DIR... [-o trace.html]: see polytel.view."""
import sys

from . import main

if __name__ == "__main__":  # importing this module (stubtest, pydoc) runs nothing
    sys.exit(main())
