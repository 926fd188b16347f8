"""user-cache-updater-2.0: Keeps the Redis user metadata cache in step with user AUDIT events.

Not implemented yet (issue #6). The module already accepts every shared option group, so
``python -m pipelines.user_cache --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "user-cache-updater-2.0"
main = not_implemented(JOB_NAME, "issue #6")

if __name__ == "__main__":
    sys.exit(main())
