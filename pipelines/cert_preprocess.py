"""collection-cert-pre-processor: Validates certificate criteria and builds generate-certificate events.

Not implemented yet (issue #5). The module already accepts every shared option group, so
``python -m pipelines.cert_preprocess --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "collection-cert-pre-processor"
main = not_implemented(JOB_NAME, "issue #5")

if __name__ == "__main__":
    sys.exit(main())
