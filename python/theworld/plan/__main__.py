"""`python -m theworld.plan --config configs/x.json [...]`: the memory planner's command line (see `theworld.plan`)."""

import sys

from theworld.plan.report import main

if __name__ == "__main__":
    sys.exit(main())
