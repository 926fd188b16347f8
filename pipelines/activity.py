"""activity-aggregate-updater: Content consumption to course progress, completion and the certificate trigger.

Not implemented yet (issue #3). The module already accepts every shared option group, so
``python -m pipelines.activity --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "activity-aggregate-updater"
main = not_implemented(JOB_NAME, "issue #3")

if __name__ == "__main__":
    sys.exit(main())
