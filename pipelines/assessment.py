"""assessment-aggregator: Assessment attempts to per-question rows, totals and best scores.

Not implemented yet (issue #4). The module already accepts every shared option group, so
``python -m pipelines.assessment --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "assessment-aggregator"
main = not_implemented(JOB_NAME, "issue #4")

if __name__ == "__main__":
    sys.exit(main())
