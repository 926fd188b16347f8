"""Helpers for declaring options that mirror reference config keys.

Beam builds one argparse parser from *every* imported ``PipelineOptions`` subclass
(``PipelineOptions.get_all_options``), so two jobs that each declare the same flag
would break any process that imports both (the test suite does). :func:`ref_option`
therefore skips a flag that is already on the parser, and records which reference
key each dest stands for so the config loader can resolve ``${...}`` against the
reference defaults. Job modules should declare their own reference keys through it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from apache_beam.options.pipeline_options import _BeamArgumentParser

from pipelines.options.config import option_dest, tuning_key

REFERENCE_KEYS: dict[str, str] = {}
"""dest -> reference config key, filled as option groups add their arguments."""

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(value: str | bool) -> bool:
    """argparse ``type`` for booleans: accepts HOCON's spellings (true/false, yes/no,
    on/off) plus 1/0, any case, so ``--flag=false`` from a .conf really means False
    (``bool("false")`` would be True)."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def parse_json(value: str) -> Any:
    """argparse ``type`` for list/object options (the config loader writes them as JSON)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected JSON, got {value!r}") from exc


def add_option(parser: Any, dest: str, *, default: Any, help: str,
               type: Callable[[str], Any] | None = str, flags: tuple[str, ...] = (),
               **kwargs: Any) -> None:
    """Adds ``--<dest>`` (plus any extra ``flags`` spellings) unless the parser already
    has it (see module docstring).

    Booleans (``type=parse_bool``) take an optional value: ``--x``, ``--x=true`` and
    ``--x=false`` all work, the last being what the config loader emits.
    """
    if type is parse_bool:
        kwargs.setdefault("nargs", "?")
        kwargs.setdefault("const", True)
        kwargs.setdefault("metavar", "true|false")
    try:
        parser.add_argument(f"--{dest}", *flags, dest=dest, default=default, type=type, help=help, **kwargs)
    except argparse.ArgumentError:
        pass  # already declared by another group sharing the same key


def ref_option(parser: Any, key: str, *, default: Any, help: str,
               type: Callable[[str], Any] | None = str, **kwargs: Any) -> str:
    """Adds the option for reference config key ``key`` (dest ``option_dest(key)``).

    The help text gets ``[conf: key]`` appended so ``--help`` tells operators which
    .conf key sets the option, and for a reference tuning key what lern-beam makes of it
    (``config.TUNING_KEYS``). Returns the dest.
    """
    dest = option_dest(key)
    REFERENCE_KEYS[dest] = key
    tuning = tuning_key(key)
    if tuning is not None:  # config.TUNING_KEYS says what becomes of it
        help += f" [FlinkRunner: {tuning.on_flink}]" if tuning.on_flink else f" [lern-beam ignores it: {tuning.why}]"
    add_option(parser, dest, default=default, help=f"{help} [conf: {key}]", type=type, **kwargs)
    return dest


def option_defaults(groups: Iterable[type]) -> dict[str, Any]:
    """dest -> default of every option the given ``PipelineOptions`` classes declare.

    Uses a throwaway parser and ``parse_known_args([])`` (public argparse API) rather
    than reading argparse internals.
    """
    parser = _BeamArgumentParser(add_help=False)
    for group in groups:
        group._add_argparse_args(parser)  # Beam's extension hook
    namespace, _ = parser.parse_known_args([])
    return vars(namespace)


def reference_defaults(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Maps dest defaults back to reference keys (non-None ones) for ``${...}`` fallback."""
    return {REFERENCE_KEYS[d]: v for d, v in defaults.items() if d in REFERENCE_KEYS and v is not None}
