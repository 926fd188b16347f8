"""merge-user-courses: Merges one account's course data into another's on account merge.

Not implemented yet (issue #4). The module already accepts every shared option group, so
``python -m pipelines.merge_courses --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "merge-user-courses"
main = not_implemented(JOB_NAME, "issue #4")

if __name__ == "__main__":
    sys.exit(main())
