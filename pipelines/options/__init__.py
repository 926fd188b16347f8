"""Pipeline options of lern-beam jobs: shared groups, the HOCON ``--config`` loader, ``--help``,
``--print_options``.

Typical job entry point::

    opts = parse_job_options(argv, extra_groups=(AssessmentOptions,),
                             defaults={"kafka.groupId": "local-assessment-aggregator-group"})
    opts.kafka_broker_servers, opts.view_as(StandardOptions).streaming
"""

from pipelines.options.cli import (
    CommandOptions,
    build_help_parser,
    is_secret,
    job_options_class,
    parse_job_options,
    print_help,
    print_options,
    registered_groups,
)
from pipelines.options.config import (
    ALIASES,
    TUNING_KEYS,
    ConfigError,
    config_to_argv,
    load_conf,
    option_dest,
    with_config,
)
from pipelines.options.fields import add_option, parse_bool, parse_json, ref_option
from pipelines.options.groups import (
    JOB_GROUPS,
    BatchIOOptions,
    CassandraOptions,
    ConfigFileOptions,
    JobOptions,
    KafkaOptions,
    RedisOptions,
    ServiceOptions,
    TaskOptions,
)

__all__ = [
    "ALIASES",
    "JOB_GROUPS",
    "TUNING_KEYS",
    "BatchIOOptions",
    "CassandraOptions",
    "CommandOptions",
    "ConfigError",
    "ConfigFileOptions",
    "JobOptions",
    "KafkaOptions",
    "RedisOptions",
    "ServiceOptions",
    "TaskOptions",
    "add_option",
    "build_help_parser",
    "config_to_argv",
    "is_secret",
    "job_options_class",
    "load_conf",
    "option_dest",
    "parse_bool",
    "parse_job_options",
    "parse_json",
    "print_help",
    "print_options",
    "ref_option",
    "registered_groups",
    "with_config",
]
