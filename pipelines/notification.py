"""notification-job: Sends email, SMS and device notifications.

Not implemented yet (issue #6). The module already accepts every shared option group, so
``python -m pipelines.notification --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "notification-job"
main = not_implemented(JOB_NAME, "issue #6")

if __name__ == "__main__":
    sys.exit(main())
