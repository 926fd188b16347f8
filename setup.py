"""lern-beam: Sunbird LERN's course data pipeline on Apache Beam.

Installable so that Flink workers get the ``pipelines`` package with ``--setup_file ./setup.py``.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
REQUIRES = [
    line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="lern-beam",
    version="0.1.0",
    description="Sunbird LERN course data pipeline (relation cache, progress, assessment, certificates, "
                "notifications) as Apache Beam pipelines",
    packages=find_packages(include=["pipelines", "pipelines.*"]),
    python_requires=">=3.11,<3.13",
    install_requires=REQUIRES,
    # One command per job, so a job module is imported under its real name (never as __main__):
    # Flink's Python workers unpickle DoFns by module name.
    entry_points={"console_scripts": [
        f"lern-{name}=pipelines.{module}:main" for name, module in (
            ("activity", "activity"), ("relation-cache", "relation_cache"), ("enrolment-sync", "enrolment_sync"),
            ("assessment", "assessment"), ("cert-preprocess", "cert_preprocess"), ("cert-generate", "cert_generate"),
            ("merge-courses", "merge_courses"), ("user-cache", "user_cache"), ("notification", "notification"),
            ("smoke", "smoke"), ("replay-failed", "replay_failed"),
            ("cert-status", "cert_status"), ("cert-bulk-status", "cert_bulk_status"),
            ("cert-status-lists", "cert_status_lists"), ("cert-verify", "cert_verify"),
        )
    ] + ["lern-flink=pipelines.runner:main"]},
)
