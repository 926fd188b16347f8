"""WriteJsonl: one output file per topic, written a bundle at a time, in bounded memory.

A batch run writes each output topic to ``<output_dir>/<topic>.jsonl``. Beam's ``WriteToText``
with ``num_shards=1`` groups every line under one key before writing, and DirectRunner keeps a
grouped PCollection of a bounded run whole in memory: a backfill's audit output (two events per
input event) grew with its input. Here each bundle streams its lines into its own part file as
they come, and only the part files' names are gathered; one step then concatenates the parts into
the topic's file and removes them. Nothing but file names is ever held.

The parts live next to the output (``<output_dir>/.<topic>.parts-<run>/``) and go through Beam's
``FileSystems``, so an output directory on shared or object storage works for workers on other
hosts, as ``WriteToText``'s temporary files did. A bundle that fails and is retried leaves a part
nobody names; it is removed with the directory, never concatenated.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

_PLAIN = CompressionTypes.UNCOMPRESSED


class _WritePartFn(beam.DoFn):
    """Each bundle's lines to one new part file, opened at its first line; yields the part's path."""

    def __init__(self, parts_dir: str):
        self.parts_dir = parts_dir

    def start_bundle(self) -> None:
        self._path: str | None = None
        self._file = None

    def process(self, line: str) -> None:
        if self._file is None:
            self._path = FileSystems.join(self.parts_dir, f"{uuid.uuid4().hex}.part")
            self._file = FileSystems.create(self._path, compression_type=_PLAIN)
        self._file.write(line.encode("utf-8"))
        self._file.write(b"\n")

    def finish_bundle(self) -> Iterator:
        if self._file is not None:
            self._file.close()
            # Bounded runs are in the global window; a part is committed with its bundle.
            yield GlobalWindows.windowed_value(self._path)
            self._file = None


def concatenate(_impulse: bytes, path: str, parts_dir: str, parts: Iterable[str]) -> Iterator[str]:
    """Writes ``path`` from the committed ``parts`` (an empty file when there are none), then
    removes the parts directory. Written under a temporary name and renamed, so a reader never
    sees half a file."""
    partial = f"{path}.incomplete-{uuid.uuid4().hex}"
    with FileSystems.create(partial, compression_type=_PLAIN) as out:
        for part in parts:
            with FileSystems.open(part, compression_type=_PLAIN) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([partial], [path])
    if FileSystems.exists(parts_dir):
        FileSystems.delete([parts_dir])
    yield path


class WriteJsonl(beam.PTransform):
    """``lines | WriteJsonl(path)``: every line into the one file ``path``; outputs ``path`` once,
    when the file is complete (steps that must run after the output is written take it as a side
    input)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, lines):
        directory, name = FileSystems.split(self.path)
        parts_dir = FileSystems.join(directory, f".{name}.parts-{uuid.uuid4().hex[:12]}")
        parts = lines | "WriteParts" >> beam.ParDo(_WritePartFn(parts_dir))
        return (
            lines.pipeline
            | "Once" >> beam.Impulse()
            | "Concatenate" >> beam.FlatMap(concatenate, self.path, parts_dir, beam.pvalue.AsList(parts))
        )
