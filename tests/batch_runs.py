"""Running a job in batch mode from a test: JSONL in, one JSONL file per output topic out."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines import job


def write_jsonl(path: Path, lines: list) -> Path:
    """Events as JSON lines; a ``str`` line is written as it is (for malformed input)."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def run_job(module, tmp_path: Path, name: str, lines: list | None, *extra: str, extra_groups: tuple = (),
            keep_namespace: bool = False) -> tuple[dict[str, int], Path]:
    """Runs ``module.build`` over ``lines`` (``None``: no ``--input``, e.g. a backfill) into ``tmp_path/name``.

    Returns the counter totals, keyed by metric name alone unless ``keep_namespace``, and the output dir.
    """
    out = tmp_path / name
    args = [*extra, "--output_dir", str(out)]
    if lines is not None:
        args = ["--input", str(write_jsonl(tmp_path / f"{name}.jsonl", lines)), *args]
    totals = job.run(module.build, args, module.defaults, extra_groups=extra_groups)
    if not keep_namespace:
        totals = {k.split(":", 1)[1]: v for k, v in totals.items()}
    return totals, out


def read_topic(out: Path, topic: str, missing_ok: bool = False) -> list[dict]:
    """The events a batch run wrote for ``local.<topic>``; a missing file is an error unless ``missing_ok``."""
    path = out / f"local.{topic}.jsonl"
    if missing_ok and not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
