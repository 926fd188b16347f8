"""enrolment-reconciliation: Recomputes enrolment progress on request, or from Cassandra as a backfill.

Not implemented yet (issue #3). The module already accepts every shared option group, so
``python -m pipelines.enrolment_sync --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "enrolment-reconciliation"
main = not_implemented(JOB_NAME, "issue #3")

if __name__ == "__main__":
    sys.exit(main())
