"""Unit tests of pipelines.options: HOCON loading, key->dest rule, precedence, defaults, --help,
--print_options, reference tuning keys."""

from __future__ import annotations

import functools
import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.options import (
    JOB_GROUPS,
    ConfigError,
    config,
    config_to_argv,
    is_secret,
    load_conf,
    option_dest,
    parse_bool,
    parse_job_options,
    parse_json,
    print_options,
    ref_option,
    with_config,
)
from pipelines.options.cli import registered_groups
from pipelines.options.config import tuning_key, tuning_key_warnings
from pipelines.options.fields import REFERENCE_KEYS, option_defaults

DATA = Path(__file__).parent / "data"
JOB_CONF = DATA / "options-job.conf"
ROOT = Path(__file__).resolve().parents[2]


class _SampleJobOptions(PipelineOptions):
    """Job-specific options of an imaginary job (unique dests: registered process-wide)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "lern-test.schema.supportedVersion", default=None, type=parse_json,
                   help="An object-valued option.")
        ref_option(parser, "lern-test.tags", default=None, type=parse_json, help="A list option.")
        # Re-declaring a shared key must be harmless (another job may do the same).
        ref_option(parser, "kafka.input.topic", default=None, help="Duplicate of a shared option.")


def _write(tmp_path: Path, text: str, name: str = "job.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- key -> dest rule ---------------------------------------------------------------

@pytest.mark.parametrize(("key", "dest"), [
    ("kafka.input.topic", "kafka_input_topic"),
    ("lms-cassandra.keyspace", "lms_cassandra_keyspace"),
    ("redis.database.relationCache.id", "redis_database_relationcache_id"),
    ("kafka.broker-servers", "kafka_broker_servers"),
    ("lms-cassandra.isMultiDCEnabled", "lms_cassandra_ismultidcenabled"),
    ("task.restart-strategy.attempts", "task_restart_strategy_attempts"),
    ("content_read_api", "content_read_api"),
    ("a..b--c", "a_b_c"),
])
def test_option_dest(key: str, dest: str) -> None:
    assert option_dest(key) == dest


# --- loading ------------------------------------------------------------------------

def test_load_conf_resolves_include_and_substitutions() -> None:
    conf = load_conf(JOB_CONF)
    assert conf["job.env"] == "qa"  # from the included base
    assert conf["kafka.input.topic"] == "qa.learner.events"
    assert conf["kafka.groupId"] == "qa-sample-group"
    assert conf["task.parallelism"] == 4  # job file overrides the base
    assert conf["task.checkpointing.interval"] == 15000
    assert conf["redis.database.relationCache.id"] == 7
    assert conf["schema.supportedVersion.itemset"] == "2.0"
    assert conf["sample.tags"] == ["a", "b"]


def test_optional_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LERN_BEAM_TEST_DEDUP_HOST", raising=False)
    assert "dedup-redis.host" not in load_conf(JOB_CONF)
    monkeypatch.setenv("LERN_BEAM_TEST_DEDUP_HOST", "dedup.example")
    assert load_conf(JOB_CONF)["dedup-redis.host"] == "dedup.example"


def test_environment_is_substitution_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LERN_BEAM_TEST_ENV", "staging")
    path = _write(tmp_path, 'job.env = ${LERN_BEAM_TEST_ENV}\nkafka.input.topic = ${job.env}".x"\n')
    assert load_conf(path) == {"job.env": "staging", "kafka.input.topic": "staging.x"}


def test_unresolvable_substitution_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LERN_BEAM_TEST_UNSET", raising=False)
    path = _write(tmp_path, "a = ${LERN_BEAM_TEST_UNSET}\n")
    with pytest.raises(ValueError, match="cannot load config file"):
        load_conf(path)


def test_missing_include_falls_back_to_reference_defaults(tmp_path: Path) -> None:
    # A reference job .conf includes base-config.conf from its classpath; without it,
    # ${job.env} must still resolve, to the reference default "local".
    path = _write(tmp_path, 'include "base-config.conf"\nkafka.input.topic = ${job.env}".telemetry.assess"\n')
    opts = parse_job_options(["--config", str(path)])
    assert opts.kafka_input_topic == "local.telemetry.assess"
    # ... and the fallback itself is not reported as if the file had set it.
    assert load_conf(path, {"job.env": "local", "task.parallelism": 9}) == {
        "kafka.input.topic": "local.telemetry.assess"}


# --- aliases ------------------------------------------------------------------------

def test_dp_core_broker_spelling_is_an_alias(tmp_path: Path) -> None:
    path = _write(tmp_path, 'kafka {\n consumer.broker-servers = "c:9092"\n'
                            ' producer.broker-servers = "p:9092"\n}\n')
    conf = load_conf(path)
    assert conf["kafka.broker-servers"] == "c:9092"
    assert parse_job_options(["--config", str(path)]).kafka_broker_servers == "c:9092"


def test_alias_does_not_override_canonical_key() -> None:
    conf = load_conf(JOB_CONF)  # sets kafka.producer.broker-servers and, via base, kafka.broker-servers
    assert conf["kafka.broker-servers"] == "broker-a:9092,broker-b:9092"


def test_documented_misspellings_are_aliases() -> None:
    conf = load_conf(JOB_CONF)
    assert conf["lms-cassandra.activitytable"] == "sample_activity"
    assert conf["kafka.failed.topic"] == "qa.learner.events.failed"
    assert conf["kafka.output.failed.topic"] == "qa.learner.events.failed"  # alias key kept


# --- conf -> argv -------------------------------------------------------------------

def test_unknown_keys_are_returned_not_fatal() -> None:
    conf = {"kafka.input.topic": "t", "neo4j.routePath": "bolt://x", "task.sample.parallelism": 1}
    argv, unknown = config_to_argv(conf, {"kafka_input_topic"})
    assert argv == ["--kafka_input_topic=t"]
    assert unknown == ["neo4j.routePath", "task.sample.parallelism"]


def test_unknown_keys_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pipelines.options.config"):
        opts = parse_job_options(["--config", str(JOB_CONF)])
    assert opts.kafka_input_topic == "qa.learner.events"
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("neo4j.routePath" in m and "kafka.zookeeper" in m for m in debug)


def test_values_are_rendered_for_argparse() -> None:
    conf = {"a.flag": False, "b.n": 3, "c.list": ["x", 1], "d.nothing": None}
    argv, _ = config_to_argv(conf, {"a_flag", "b_n", "c_list", "d_nothing"})
    assert argv == ["--a_flag=false", "--b_n=3", '--c_list=["x",1]']


def test_object_valued_option_gets_json() -> None:
    opts = parse_job_options(["--config", str(JOB_CONF)], extra_groups=(_SampleJobOptions,))
    assert opts.lern_test_schema_supportedversion is None  # key differs from the file's
    conf = {"lern-test.schema.supportedVersion.itemset": "2.0", "lern-test.tags": ["a"]}
    argv, unknown = config_to_argv(conf, {"lern_test_schema_supportedversion", "lern_test_tags"})
    assert argv == ['--lern_test_schema_supportedversion={"itemset":"2.0"}', '--lern_test_tags=["a"]']
    assert unknown == []
    opts = parse_job_options(argv, extra_groups=(_SampleJobOptions,))
    assert opts.lern_test_schema_supportedversion == {"itemset": "2.0"}
    assert opts.lern_test_tags == ["a"]


def test_two_keys_for_one_option_must_agree() -> None:
    with pytest.raises(ValueError, match="both set option --content_read_api"):
        config_to_argv({"content.read.api": "http://a/", "content_read_api": "/b"}, {"content_read_api"})
    argv, _ = config_to_argv({"content.read.api": "/same", "content_read_api": "/same"}, {"content_read_api"})
    assert argv == ["--content_read_api=/same"]


# --- precedence ---------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--config", str(JOB_CONF), "--kafka_input_topic=cli.topic", "--task_parallelism", "8"],
    [f"--config={JOB_CONF}", "--kafka_input_topic=cli.topic", "--task_parallelism=8"],
    ["--kafka_input_topic=cli.topic", "--task_parallelism=8", "--config", str(JOB_CONF)],
    ["--kafka_input_topic=cli.topic", "--task_parallelism=8", "--config.file.path", str(JOB_CONF)],
])
def test_flags_override_conf(argv: list[str]) -> None:
    opts = parse_job_options(argv)
    assert opts.kafka_input_topic == "cli.topic"
    assert opts.task_parallelism == 8
    assert opts.kafka_groupid == "qa-sample-group"  # still from the file


def test_with_config_prepends_and_leaves_argv_alone_without_config() -> None:
    assert with_config(["--runner=DirectRunner"], {"kafka_input_topic"}) == ["--runner=DirectRunner"]
    argv = ["--config", str(JOB_CONF), "--kafka_input_topic=x"]
    out = with_config(argv, {"kafka_input_topic", "task_parallelism"})
    assert out[-3:] == argv
    assert out[:-3] == ["--kafka_input_topic=qa.learner.events", "--task_parallelism=4"]


def test_job_defaults_sit_between_group_defaults_and_conf(tmp_path: Path) -> None:
    job_defaults = {"kafka.groupId": "local-sample-group", "lms-cassandra.keyspace": "sample_ks",
                    "kafka.input.topic": "default.topic"}
    opts = parse_job_options([], defaults=job_defaults)
    assert (opts.kafka_groupid, opts.lms_cassandra_keyspace) == ("local-sample-group", "sample_ks")
    path = _write(tmp_path, 'kafka.groupId = "from-file"\n')
    opts = parse_job_options(["--config", str(path), "--lms_cassandra_keyspace=cli_ks"],
                             defaults=job_defaults)
    assert (opts.kafka_groupid, opts.lms_cassandra_keyspace, opts.kafka_input_topic) == (
        "from-file", "cli_ks", "default.topic")


def test_beam_flags_pass_through() -> None:
    opts = parse_job_options(["--config", str(JOB_CONF), "--runner=DirectRunner", "--streaming"])
    assert opts.view_as(StandardOptions).runner == "DirectRunner"
    assert opts.view_as(StandardOptions).streaming is True


# --- defaults and types -------------------------------------------------------------

REFERENCE_DEFAULTS = {
    "kafka_broker_servers": "localhost:9092",
    "kafka_auto_offset_reset": None,
    "job_env": "local",
    "kafka_producer_max_request_size": 1572864,
    "kafka_producer_batch_size": 65536,
    "kafka_producer_linger_ms": 10,
    "lms_cassandra_host": "localhost",
    "lms_cassandra_port": 9042,
    "lms_cassandra_keyspace": "sunbird_courses",
    "lms_cassandra_ismultidcenabled": False,
    "lms_cassandra_consistency": "LOCAL_QUORUM",
    "lms_cassandra_user_enrolments_table": "user_enrolments",
    "lms_cassandra_user_activity_agg_table": "user_activity_agg",
    "lms_cassandra_consumption_table": "user_content_consumption",
    "redis_host": "localhost",
    "redis_port": 6379,
    "redis_meta_host": "localhost",
    "redis_meta_port": 6379,
    "redis_database_relationcache_id": 10,
    "redis_database_contentcache_id": 5,
    "redis_database_collectioncache_id": 0,
    "redis_database_index": 10,
    "dp_redis_database_index": 5,
    "dedup_redis_database_index": 3,
    "dedup_redis_database_expiry": 604800,
    "redis_meta_database_userstore_id": 12,
    "redis_meta_database_key_expiry_seconds": 3600,
    "service_rc_entity": "TrainingCertificate",
    "task_parallelism": 1,
    "task_consumer_parallelism": 1,
    "task_checkpointing_interval": 60000,
    "task_checkpointing_compressed": True,
    "task_checkpointing_pause_between_seconds": 30000,
    "task_checkpointing_timeout": 600000,
    "task_restart_strategy_attempts": 3,
    "task_restart_strategy_delay": 30000,
    "task_window_shards": 1,
    "threshold_batch_read_size": 1000,
    "threshold_batch_read_interval": 60,
    "threshold_batch_write_size": 10,
    "expansion_service": "localhost:8097",
    "input": None,
    "output_dir": None,
    "from_cassandra": False,
    "config": None,
}


def test_defaults_equal_reference_defaults() -> None:
    opts = parse_job_options([])
    actual = {dest: getattr(opts, dest) for dest in REFERENCE_DEFAULTS}
    assert actual == REFERENCE_DEFAULTS


def test_conf_values_are_typed() -> None:
    opts = parse_job_options(["--config", str(JOB_CONF)])
    assert opts.lms_cassandra_port == 9142  # quoted "9142" in the file
    assert opts.lms_cassandra_ismultidcenabled is True  # quoted "true"
    assert opts.task_checkpointing_compressed is False  # HOCON false
    assert opts.redis_meta_host == "meta-redis"
    assert opts.dedup_redis_database_expiry == 86400
    assert opts.threshold_batch_read_size == 250


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("FALSE", False), ("yes", True), ("off", False), ("1", True), ("0", False), (True, True),
])
def test_parse_bool(text: Any, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize(("argv", "value"), [
    (["--lms_cassandra_ismultidcenabled"], True),
    (["--lms_cassandra_ismultidcenabled=true"], True),
    (["--lms_cassandra_ismultidcenabled=false"], False),
    (["--from_cassandra"], True),
    ([], False),
])
def test_bool_flags(argv: list[str], value: bool) -> None:
    opts = parse_job_options(argv)
    flag = argv[0].split("=")[0][2:] if argv else "lms_cassandra_ismultidcenabled"
    assert getattr(opts, flag) is value


def test_bad_conf_value_names_key_and_file(tmp_path: Path) -> None:
    # merge-user-courses' packaged conf swaps host and port; say so in operator terms.
    path = _write(tmp_path, 'lms-cassandra { port = "localhost", host = "9042" }\n')
    with pytest.raises(ValueError, match=r"job.conf: bad value for lms-cassandra.port .*'localhost'"):
        parse_job_options(["--config", str(path)])


def test_bad_bool_is_rejected() -> None:
    with pytest.raises(SystemExit):
        parse_job_options(["--lms_cassandra_ismultidcenabled=maybe"])


def test_a_bad_flag_value_is_one_line_not_a_page_of_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_job_options(["--lms_cassandra_port=abc"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == ("error: command line: bad value for lms-cassandra.port "
                                       "(--lms_cassandra_port): invalid int value: 'abc'\n")


# --- registration and --help --------------------------------------------------------

def test_groups_do_not_clash_with_beam_options() -> None:
    beam_groups = [g for g in registered_groups()
                   if g.__module__.startswith("apache_beam.") and g is not _SampleJobOptions]
    ours = set(option_defaults(JOB_GROUPS))
    assert ours.isdisjoint(option_defaults(beam_groups))
    # Beam's own all-options parse (used when a pipeline runs) accepts every group.
    everything = PipelineOptions(["--kafka_input_topic=t"]).get_all_options()
    assert everything["kafka_input_topic"] == "t"
    assert ours <= set(everything)


def test_help_lists_every_group() -> None:
    code = ("from pipelines.options import parse_job_options\n"
            "parse_job_options(['--help'], prog='pipelines.sample')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())  # undo argparse's line wrapping
    for group in JOB_GROUPS:
        assert f"{group.__name__}:" in out
    for name in ("--config", "--kafka_broker_servers", "--lms_cassandra_keyspace",
                 "--redis_database_relationcache_id", "--service_rc_basepath", "--input",
                 "--output_dir", "--from_cassandra", "--task_checkpointing_interval",
                 "--threshold_batch_read_size", "[conf: lms-cassandra.keyspace]",
                 "StandardOptions:", "--runner", "FlinkRunnerOptions:", "--flink_master"):
        assert name in out, name


def test_help_shows_job_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_job_options(["-h"], extra_groups=(_SampleJobOptions,), defaults={"kafka.groupId": "my-group"})
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "_SampleJobOptions:" in out
    assert "(default: my-group)" in out


# --- issue 12: configuration --------------------------------------------------------

@pytest.mark.parametrize("override", [["--lms_cassandra_port=9142"], ["--lms_cassandra_port", "9142"]])
def test_a_flag_overrides_a_bad_conf_value(tmp_path: Path, override: list[str]) -> None:
    # The bad file value is dropped before anything parses it, so the flag can correct it.
    path = _write(tmp_path, 'lms-cassandra { port = "localhost", keyspace = "from_file" }\n')
    opts = parse_job_options(["--config", str(path), *override])
    assert (opts.lms_cassandra_port, opts.lms_cassandra_keyspace) == (9142, "from_file")


def test_a_bad_conf_value_not_overridden_names_key_file_and_the_fix(tmp_path: Path) -> None:
    path = _write(tmp_path, 'lms-cassandra { port = "localhost" }\nredis.port = 6380\n')
    with pytest.raises(ConfigError, match=r"config file .*job.conf: bad value for lms-cassandra.port "
                                          r".*'localhost'.*override it with --lms_cassandra_port"):
        parse_job_options(["--config", str(path), "--redis_port=6381"])  # another flag does not help


class _SecretIntOptions(PipelineOptions):
    """A secret with a type, so a bad value can be rejected (unique dest: registered process-wide)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "lern-test.auth.pin", default=None, type=int, help="A numeric secret.")


def test_a_bad_secret_value_is_not_shown(tmp_path: Path) -> None:
    path = _write(tmp_path, 'lern-test.auth.pin = "s3cr3t"\n')
    with pytest.raises(ConfigError, match="bad value for lern-test.auth.pin") as exc:
        parse_job_options(["--config", str(path)], extra_groups=(_SecretIntOptions,))
    assert "s3cr3t" not in str(exc.value)


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_warned", set())


def test_tuning_keys_that_change_nothing_are_named() -> None:
    keys = {"task.parallelism": 2, "task.checkpointing.interval": 1000, "task.dedup.parallelism": 4,
            "task.activity.agg.parallelism": 2, "task.consumer.parallelism": 3, "threshold.batch.write.size": 10,
            "redis.connection.max": 2, "job.statebackend.base.url": "wasbs://x", "kafka.input.topic": "t",
            "lms-cassandra.isMultiDCEnabled": None}
    direct = tuning_key_warnings(keys, flink=False, parallelism=2)
    assert set(direct) == {"task.parallelism", "task.checkpointing.interval", "task.dedup.parallelism",
                           "task.consumer.parallelism", "threshold.batch.write.size", "redis.connection.max",
                           "job.statebackend.base.url"}  # equal to task.parallelism, unset, not tuning: silent
    assert direct["task.checkpointing.interval"].endswith("on FlinkRunner it becomes --checkpointing_interval")
    assert direct["task.dedup.parallelism"].startswith("a Beam pipeline has one parallelism")
    assert "--flink_checkpoints_dir" in direct["job.statebackend.base.url"]
    # On Flink, pipelines.runner maps these (and warns about task.consumer.parallelism itself).
    flink = tuning_key_warnings(keys, flink=True, parallelism=2)
    assert set(flink) == {"task.dedup.parallelism", "threshold.batch.write.size", "redis.connection.max",
                          "job.statebackend.base.url"}


def test_the_keys_runner_maps_are_the_flink_entries_of_the_one_list() -> None:
    from pipelines.runner import REFERENCE_FLINK_KEYS

    for dest, flag in REFERENCE_FLINK_KEYS.items():
        entry = tuning_key(REFERENCE_KEYS[dest])
        assert entry is not None and entry.on_flink == flag, dest
    assert all(tuning_key(key) is None for key in ("task.window.shards", "threshold.batch.read.size"))


def test_tuning_keys_warn_once_per_key(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                       fresh_warnings: None) -> None:
    path = _write(tmp_path, "task { parallelism = 1, dedup.parallelism = 4, window.shards = 2 }\n"
                            "threshold.batch.write.size = 10\ntask.notifier.parallelism = 3\n")
    with caplog.at_level(logging.WARNING, logger="pipelines.options.config"):
        for _ in range(3):  # a job parses its options more than once
            parse_job_options(["--config", str(path), "--threshold_batch_read_interval=5"])
    messages = [r.getMessage() for r in caplog.records]
    assert sorted(messages) == sorted([
        "config: task.parallelism=1 is ignored: only FlinkRunner runs steps in parallel; on FlinkRunner it "
        "becomes --parallelism",
        "config: task.dedup.parallelism=4, task.notifier.parallelism=3 are ignored: a Beam pipeline has one "
        "parallelism (task.parallelism, FlinkRunner --parallelism) and every step runs at it",
        "config: threshold.batch.write.size=10 is ignored: the jobs size their Cassandra write batches "
        "themselves (by statements, not rows)",
        "config: threshold.batch.read.interval=5 is ignored: a partial batch is flushed after 1 s in "
        "streaming and at the end of the input in batch (on a Flink cluster it only sets the default --rewind_ms)",
    ])


def test_defaults_alone_warn_nothing(caplog: pytest.LogCaptureFixture, fresh_warnings: None) -> None:
    with caplog.at_level(logging.WARNING, logger="pipelines.options.config"):
        parse_job_options(["--runner=DirectRunner"])
    assert caplog.records == []


@pytest.mark.parametrize(("dest", "secret"), [
    ("mail_server_password", True), ("sms_auth_key", True), ("fcm_account_key", True),
    ("service_rc_rcapikey", True), ("s3_secret_access_key", True), ("s3_access_key_id", True),
    ("azure_connection_string", True), ("some_token", True),
    ("kafka_groupid", False), ("user_valid_key", False), ("user_self_signin_key", False),
    ("redis_meta_database_key_expiry_seconds", False), ("mail_server_username", False),
    ("user_cache_key_expiry_enabled", False), ("dataflow_kms_key", False),
])
def test_is_secret(dest: str, secret: bool) -> None:
    assert is_secret(dest) is secret


def test_print_options_masks_secrets_and_groups_the_job_first(tmp_path: Path) -> None:
    from pipelines.options.notification import NotificationOptions
    from pipelines.options.user_cache import UserCacheOptions

    path = _write(tmp_path, 'mail_server_password = "hunter2"\nsms_auth_key = "msg91-s3cr3t"\n'
                            'fcm_account_key = "{\\"private_key\\": \\"fcm-s3cr3t\\"}"\n'
                            'service.rc.rcApiKey = "rc-s3cr3t"\nmail_server_username = "mailer"\n'
                            'kafka.groupId = "from-file"\nlms-cassandra.port = "nonsense"\n'
                            'service.search.basePath = "http://admin:pw-s3cr3t@search:9000"\n')
    out = io.StringIO()
    print_options(["--config", str(path), "--lms_cassandra_port=9142", "--sms_default_sender=FLAGSM",
                   "--java_side_token=tok-s3cr3t"],
                  extra_groups=(NotificationOptions, UserCacheOptions), defaults={"kafka.input.topic": "job.topic"},
                  runner_flags=["--streaming", "--checkpointing_interval=1000"], prog="pipelines.sample", file=out)
    text = out.getvalue()
    assert "s3cr3t" not in text and "hunter2" not in text
    rows = {line.split()[0].split("=")[0]: line.split()[0:3] for line in text.splitlines() if line.startswith("  --")}
    assert rows["--mail_server_password"][:2] == ["--mail_server_password=****", "file"]
    assert rows["--sms_auth_key"][0] == "--sms_auth_key=****"
    assert rows["--fcm_account_key"][0] == "--fcm_account_key=****"
    assert rows["--service_rc_rcapikey"][0] == "--service_rc_rcapikey=****"
    assert rows["--service_search_basepath"][0] == "--service_search_basepath=http://****@search:9000"
    assert rows["--mail_server_username"][0] == "--mail_server_username=mailer"  # a name, not a secret
    assert rows["--user_valid_key"][0].startswith("--user_valid_key=") and "****" not in rows["--user_valid_key"][0]
    assert rows["--kafka_groupid"] == ["--kafka_groupid=from-file", "file", "kafka.groupId"]
    assert rows["--kafka_input_topic"] == ["--kafka_input_topic=job.topic", "job", "kafka.input.topic"]
    assert rows["--lms_cassandra_port"] == ["--lms_cassandra_port=9142", "flag", "lms-cassandra.port"]
    assert rows["--sms_default_sender"][:2] == ["--sms_default_sender=FLAGSM", "flag"]
    assert rows["--streaming"][:2] == ["--streaming=true", "runner"]
    assert rows["--redis_port"][:2] == ["--redis_port=6379", "default"]
    # Flags no Python group reads (FlinkRunner's Java-side options) are effective too.
    assert rows["--checkpointing_interval"] == ["--checkpointing_interval=1000", "runner"]
    assert rows["--java_side_token"] == ["--java_side_token=****", "flag"]
    headers = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert headers[:3] == ["NotificationOptions", "UserCacheOptions", "ConfigFileOptions"]
    assert headers.index("KafkaOptions") < headers.index("StandardOptions") < headers.index("Other flags")
    assert "GoogleCloudOptions" not in headers  # Beam groups appear only with values that were set


def test_help_shows_the_job_groups_then_two_beam_groups(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_job_options(["--help"], extra_groups=(_SampleJobOptions,))
    assert exc.value.code == 0
    out = capsys.readouterr().out
    headers = [line[:-1] for line in out.splitlines() if line.endswith("Options:")]
    assert headers[:2] == ["_SampleJobOptions", "ConfigFileOptions"]
    beam_names = {g.__name__ for g in registered_groups() if g.__module__.startswith("apache_beam.")}
    beam = [h for h in headers if h in beam_names]
    assert beam == ["StandardOptions", "FlinkRunnerOptions"]
    assert headers.index("TaskOptions") < headers.index("StandardOptions")
    assert "--print_options" in out and "--google_cloud" not in " ".join(out.split())
    flat = " ".join(out.split())  # the tuning keys say what becomes of them, from the one list
    assert "Default parallelism. [FlinkRunner: --parallelism] [conf: task.parallelism]" in flat
    assert "Rows per batched write. [lern-beam ignores it: the jobs size their Cassandra write" in flat
    assert "are listed by --help_all." in " ".join(out.split()[-12:])
    with pytest.raises(SystemExit) as exc:
        parse_job_options(["--help_all"], extra_groups=(_SampleJobOptions,))
    assert exc.value.code == 0
    everything = capsys.readouterr().out
    assert "GoogleCloudOptions:" in everything and "S3Options:" in everything
    assert everything.index("_SampleJobOptions:") < everything.index("StandardOptions:")
    assert len(out[out.index("StandardOptions:"):].splitlines()) < 70  # Beam's part of --help
    assert len(everything.splitlines()) > len(out.splitlines()) + 500


def test_job_print_options_and_bad_conf_exit_cleanly(tmp_path: Path) -> None:
    # The real entry point, no servers: --print_options must not build or run the pipeline.
    path = _write(tmp_path, 'kafka.input.topic = "qa.events"\nservice.rc.rcApiKey = "rc-s3cr3t"\n'
                            'lms-cassandra.port = "localhost"\ntask.dedup.parallelism = 4\n')
    run = functools.partial(subprocess.run, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    shown = run([sys.executable, "-m", "pipelines.activity", "--config", str(path), "--lms_cassandra_port=9042",
                 "--print_options"])
    assert shown.returncode == 0, shown.stderr
    assert "rc-s3cr3t" not in shown.stdout + shown.stderr
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert ["--service_rc_rcapikey=****", "file", "service.rc.rcApiKey"] in lines
    assert ["--kafka_input_topic=qa.events", "file", "kafka.input.topic"] in lines
    assert ["--lms_cassandra_port=9042", "flag", "lms-cassandra.port"] in lines
    assert ["--streaming=true", "runner"] in lines  # what the runner adds is effective too
    assert "task.dedup.parallelism=4 is ignored" in shown.stderr
    failed = run([sys.executable, "-m", "pipelines.activity", "--config", str(path), "--print_options"])
    assert failed.returncode == 1
    assert f"error: config file {path}: bad value for lms-cassandra.port" in failed.stderr
    assert "Traceback" not in failed.stderr
