"""collection-certificate-generator: issues certificates through Sunbird RC, exactly once,
and records them on the enrolment.

Not implemented yet (issue #5). The module already accepts every shared option group, so
``python -m pipelines.cert_generate --help`` documents them and a reference ``--config`` file parses.
"""

import sys

from pipelines.job import not_implemented

JOB_NAME = "collection-certificate-generator"
main = not_implemented(JOB_NAME, "issue #5")

if __name__ == "__main__":
    sys.exit(main())
