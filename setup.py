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
)
