"""relation-cache-updater: walks a published collection's hierarchy into the Redis relation
cache (leaf nodes, optional nodes, ancestors, units).

Not implemented yet (issue #3). The module already accepts every shared option group, so
``python -m pipelines.relation_cache --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "relation-cache-updater"
main = not_implemented(JOB_NAME, "issue #3")

if __name__ == "__main__":
    sys.exit(main())
