"""The shared ``PipelineOptions`` groups of every lern-beam job.

Every option that mirrors a reference config key has the dest ``option_dest(key)``
and the reference default (jobs-core ``BaseJobConfig`` / ``base-config.conf`` and
the job confs). Keys that several reference jobs read live here, once, because Beam
puts all option classes into one parser: a job that declared ``--kafka_input_topic``
itself would clash with another job doing the same. Where jobs disagree on a
default (topics, group ids, some tables) the default here is ``None`` or the most
common value, and the job passes its own through ``parse_job_options(defaults=...)``.

Exceptions to "reference default": hosts and URLs the reference ships pointing at
its dev servers (``11.2.x.x``, ``dev.sunbirded.org``) default to the local stack
(localhost, the Sunbird emulator on port 9000).
"""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options.fields import add_option, parse_bool, ref_option

EMULATOR_URL = "http://localhost:9000"
"""Base URL of the local Sunbird services emulator (DESIGN.md, local stack)."""


class ConfigFileOptions(PipelineOptions):
    """Reference-style HOCON config file."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_option(
            parser, "config", default=None, flags=("--config.file.path",),
            help="Path of a reference-style HOCON .conf (e.g. the reference job's own "
                 "assessment-aggregator.conf). Keys map to options by lower-casing and turning "
                 "every run of non-alphanumerics into '_' (kafka.input.topic -> "
                 "--kafka_input_topic); keys this job does not use are ignored. Explicit "
                 "command-line flags override the file; the file overrides defaults.")


class KafkaOptions(PipelineOptions):
    """Kafka brokers, consumer group and topics (streaming mode)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "kafka.broker-servers", default="localhost:9092",
                   help="Kafka bootstrap servers, host:port[,host:port...]. Also read from "
                        "kafka.consumer.broker-servers / kafka.producer.broker-servers (dp-core "
                        "spelling) when this key is absent.")
        ref_option(parser, "kafka.groupId", default=None,
                   help="Kafka consumer group id (committed offsets live under it). The job "
                        "supplies its reference default.")
        ref_option(parser, "kafka.auto.offset.reset", default=None,
                   choices=("earliest", "latest", "none"),
                   help="auto.offset.reset for a group without committed offsets; unset means "
                        "Kafka's own default (latest), as in the reference.")
        ref_option(parser, "job.env", default="local",
                   help="Environment name; prefixes the default topic and group names "
                        "(${job.env} in the reference confs).")
        ref_option(parser, "kafka.producer.max-request-size", default=1572864, type=int,
                   help="Producer max.request.size in bytes (dp-core base default).")
        ref_option(parser, "kafka.producer.batch.size", default=65536, type=int,
                   help="Producer batch.size in bytes (jobs-core uses 16384*4).")
        ref_option(parser, "kafka.producer.linger.ms", default=10, type=int,
                   help="Producer linger.ms.")
        ref_option(parser, "kafka.producer.compression.type", default="snappy",
                   help="Producer compression.type (fixed to snappy in the reference; "
                        "not a reference key).")
        _topic(parser, "kafka.input.topic", "Topic the job consumes.")
        _topic(parser, "kafka.failed.topic",
               "Failed-events topic of assessment-aggregator (its docs call it "
               "kafka.output.failed.topic; that spelling is accepted when this key is absent).")
        _topic(parser, "kafka.output.failed.topic", "Failed-events topic (most jobs).")
        _topic(parser, "kafka.output.audit.topic", "Audit (telemetry) events topic.")
        _topic(parser, "kafka.output.certissue.topic", "Certificate issue request topic.")
        _topic(parser, "kafka.output.topic", "Main output topic (collection-cert-pre-processor).")
        _topic(parser, "kafka.output.course.batch.updater.topic",
               "Batch enrolment sync request topic (merge-user-courses).")
        add_option(parser, "max_num_records", default=None, type=int,
                   help="Stop reading Kafka after this many records (bounded read, for tests; "
                        "not a reference key).")
        add_option(parser, "max_read_time_secs", default=None, type=int,
                   help="Stop reading Kafka after this many seconds (bounded read, for tests; "
                        "not a reference key).")
        add_option(parser, "start_read_time_ms", default=None, type=int,
                   help="Start reading Kafka at the first record at or after this epoch time in ms, "
                        "ignoring committed offsets (replay from a point in time; not a reference key).")
        add_option(parser, "expansion_service", default="localhost:8097",
                   help="host:port of the Java Kafka IO expansion service used by "
                        "ReadFromKafka/WriteToKafka.")


def _topic(parser: Any, key: str, help: str) -> None:
    ref_option(parser, key, default=None, help=f"{help} The job supplies its reference default.")


class CassandraOptions(PipelineOptions):
    """LMS Cassandra connection and the tables several jobs share."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "lms-cassandra.host", default="localhost",
                   help="Cassandra contact point host.")
        ref_option(parser, "lms-cassandra.port", default=9042, type=int,
                   help="Cassandra native protocol port.")
        ref_option(parser, "lms-cassandra.keyspace", default="sunbird_courses",
                   help="Keyspace of the LMS tables (relation-cache-updater uses its hierarchy "
                        "keyspace instead).")
        ref_option(parser, "lms-cassandra.isMultiDCEnabled", default=False, type=parse_bool,
                   help="Use a DC-aware load-balancing policy (true/false).")
        ref_option(parser, "lms-cassandra.consistency", default="LOCAL_QUORUM",
                   help="Consistency level of reads and writes (fixed to LOCAL_QUORUM in the "
                        "reference; not a reference key).")
        ref_option(parser, "lms-cassandra.table", default=None,
                   help="The job's main table (assessment_aggregator / content_hierarchy); the "
                        "job supplies its reference default.")
        ref_option(parser, "lms-cassandra.consumption.table", default="user_content_consumption",
                   help="Content consumption table.")
        ref_option(parser, "lms-cassandra.content_consumption.table",
                   default="user_content_consumption",
                   help="Content consumption table (merge-user-courses' key).")
        ref_option(parser, "lms-cassandra.user_activity_agg.table", default="user_activity_agg",
                   help="Activity aggregates table.")
        ref_option(parser, "lms-cassandra.user_enrolments.table", default="user_enrolments",
                   help="Enrolments table.")
        ref_option(parser, "lms-cassandra.course_batch.table", default="course_batch",
                   help="Course batch table.")
        ref_option(parser, "lms-cassandra.assessment_aggregator.table", default="assessment_aggregator",
                   help="Assessment attempts table, as read by the certificate pre-processor.")


class RedisOptions(PipelineOptions):
    """Redis instances and DB indexes (caches, dedup store)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "redis.host", default="localhost", help="Data Redis host.")
        ref_option(parser, "redis.port", default=6379, type=int, help="Data Redis port.")
        ref_option(parser, "redis-meta.host", default="localhost",
                   help="Metadata Redis host (relation, content, collection and user caches).")
        ref_option(parser, "redis-meta.port", default=6379, type=int, help="Metadata Redis port.")
        ref_option(parser, "redisdb.connection.timeout", default=30000, type=int,
                   help="Redis connection/socket timeout in ms (dp-core key).")
        ref_option(parser, "redis.database.relationCache.id", default=10, type=int,
                   help="DB index of the relation cache (leaf nodes and ancestors).")
        ref_option(parser, "redis.database.contentCache.id", default=5, type=int,
                   help="DB index of the content cache.")
        ref_option(parser, "redis.database.collectionCache.id", default=0, type=int,
                   help="DB index of the collection cache.")
        ref_option(parser, "redis.database.index", default=10, type=int,
                   help="DB index relation-cache-updater writes the relation cache to.")
        ref_option(parser, "dp-redis.host", default="localhost",
                   help="Redis host of relation-cache-updater's collection cache (the reference "
                        "conf ships a dev IP).")
        ref_option(parser, "dp-redis.port", default=6379, type=int,
                   help="Port of relation-cache-updater's collection cache Redis.")
        ref_option(parser, "dp-redis.database.index", default=5, type=int,
                   help="DB index of relation-cache-updater's collection cache.")
        ref_option(parser, "dedup-redis.host", default="localhost",
                   help="Redis host of the input dedup store (the reference conf ships a dev IP).")
        ref_option(parser, "dedup-redis.port", default=6379, type=int, help="Dedup store Redis port.")
        ref_option(parser, "dedup-redis.database.index", default=3, type=int,
                   help="DB index of the dedup store.")
        ref_option(parser, "dedup-redis.database.expiry", default=604800, type=int,
                   help="Expiry of dedup keys in seconds (7 days).")
        ref_option(parser, "redis-meta.database.userstore.id", default=12, type=int,
                   help="DB index of the user cache (user-cache-updater).")
        ref_option(parser, "redis-meta.database.key.expiry.seconds", default=3600, type=int,
                   help="Expiry of user cache keys in seconds.")


class ServiceOptions(PipelineOptions):
    """Base URLs of the Sunbird services the jobs call over HTTP, and HTTP behaviour."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "service.content.basePath", default=EMULATOR_URL,
                   help="Content service base URL (content read).")
        ref_option(parser, "service.search.basePath", default=EMULATOR_URL,
                   help="Search service base URL; /v3/search is appended.")
        ref_option(parser, "service.learner.basePath", default=EMULATOR_URL,
                   help="Learner/user-org service base URL (user read, /v2/notification, "
                        "/private/user/feed/v1/create).")
        ref_option(parser, "service.userorg.basePath", default=EMULATOR_URL,
                   help="User-org service base URL (user-cache-updater).")
        ref_option(parser, "service.taxonomy.basePath", default=EMULATOR_URL,
                   help="Taxonomy service base URL (framework read).")
        ref_option(parser, "service.enc.basePath", default=EMULATOR_URL,
                   help="Encryption service base URL (certificate signing).")
        ref_option(parser, "service.certreg.basePath", default=EMULATOR_URL,
                   help="Legacy certificate registry base URL.")
        ref_option(parser, "service.rc.basePath", default=f"{EMULATOR_URL}/api/v1",
                   help="Sunbird RC registry base URL; /<entity> is appended.")
        ref_option(parser, "service.rc.entity", default="TrainingCertificate",
                   help="Sunbird RC entity certificates are created as.")
        ref_option(parser, "service.rc.rcApiKey", default="token", help="Sunbird RC API key.")
        ref_option(parser, "content.read.api", default=None,
                   help="Content read: a full URL prefix the content id is appended to "
                        "(assessment-aggregator) or a path after service.content.basePath "
                        "(content_read_api, collection-cert-pre-processor). Both keys map to this "
                        "option; the job supplies its reference default.")
        ref_option(parser, "user_read_api", default=None,
                   help="User read path appended to the learner/user-org base URL; the job supplies "
                        "its reference default.")
        ref_option(parser, "framework_read_api", default="/api/framework/v1/read/",
                   help="Framework read path appended to the taxonomy base URL.")
        add_option(parser, "http_timeout_secs", default=10.0, type=float,
                   help="Timeout of each HTTP call in seconds (not a reference key).")
        add_option(parser, "http_retries", default=3, type=int,
                   help="Retries of an HTTP call after a connection error or 5xx (not a reference key).")


class BatchIOOptions(PipelineOptions):
    """Batch mode: JSONL files instead of Kafka."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_option(parser, "input", default=None,
                   help="JSONL file path or glob, one event per line. When given, the job runs in "
                        "batch mode and reads no Kafka.")
        add_option(parser, "output_dir", default=None,
                   help="Directory receiving one JSONL file per output topic (audit, cert-issue, "
                        "failed, ...) in batch mode.")
        add_option(parser, "max_failed_fraction", default=0.1, type=float,
                   help="A batch run whose failed records exceed this fraction of its input records exits "
                        "with status 3 and a summary (its outputs are written; re-drive the failed output "
                        "with lern-replay-failed once the cause is fixed).")
        add_option(parser, "from_cassandra", default=False, type=parse_bool,
                   help="Batch backfill: take the work items from Cassandra instead of events "
                        "(for jobs that support it).")
        add_option(parser, "course_id", default=None,
                   help="Backfill selection (--from_cassandra): the course whose enrolments to process "
                        "(without --course_id, --batch_id or --user_id: every enrolment).")
        add_option(parser, "batch_id", default=None,
                   help="Backfill selection (--from_cassandra): only this batch of the course.")
        add_option(parser, "user_id", default=None,
                   help="Backfill selection (--from_cassandra): only this learner's enrolments.")
        add_option(parser, "scan_token_ranges", default=64, type=int,
                   help="Backfill (--from_cassandra): the user_enrolments scan is cut into this many "
                        "token ranges of the Murmur3 ring, the units of work the runner spreads over "
                        "its workers (not a reference key).")
        add_option(parser, "bounded_grouping", default="auto", choices=("auto", "bundle", "shuffle"),
                   help="How a bounded run cuts its store batches (not a reference key). bundle: from each "
                        "bundle's elements as they stream past, so nothing is held but the open batches "
                        "(needs a runner that processes one bundle at a time: DirectRunner with one "
                        "worker, FlinkRunner at --parallelism=1); shuffle: GroupByKey on the shard key, "
                        "then batches (any number of workers, but the runner holds the grouped input). "
                        "auto: bundle on those two, shuffle elsewhere.")
        add_option(parser, "scan_page_size", default=1000, type=int,
                   help="Backfill (--from_cassandra): rows per page request of the scan; a worker holds "
                        "one page at a time (not a reference key).")


class ProgressOptions(PipelineOptions):
    """Course progress jobs (activity-aggregate-updater, enrolment-reconciliation)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "activity.module.aggs.enabled", default=True, type=parse_bool,
                   help="Also write per-unit (course module) completedCount aggregates.")
        ref_option(parser, "activity.input.dedup.enabled", default=True, type=parse_bool,
                   help="Drop content completions already processed (Redis dedup store).")
        ref_option(parser, "activity.filter.processed.enrolments", default=True, type=parse_bool,
                   help="Write only enrolments that exist and are not completed yet.")
        ref_option(parser, "activity.collection.status.cache.expiry", default=3600, type=int,
                   help="Seconds a collection status from the search service is cached.")
        # lern-beam's own keys (same naming rule, so a .conf may set them too).
        ref_option(parser, "lms-cassandra.consumption.applied.table", default="consumption_events_applied",
                   help="lern-beam's record of the completions counted in user_content_consumption, kept "
                        "for dedup-redis.database.expiry (makes viewcount/completedcount replay-safe "
                        "without the dedup store).")


class TaskOptions(PipelineOptions):
    """Task-level settings: parallelism, checkpointing, restarts, batching thresholds."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "task.parallelism", default=1, type=int, help="Default parallelism.")
        ref_option(parser, "task.consumer.parallelism", default=1, type=int,
                   help="Parallelism of the Kafka source.")
        ref_option(parser, "task.checkpointing.interval", default=60000, type=int,
                   help="Checkpoint interval in ms; offsets are committed on checkpoints.")
        add_option(parser, "replay_window_secs", default=None, type=float,
                   help="Streaming: a dedup mark or completion younger than this is taken for a crash replay "
                        "(its outputs may be lost): the event is let through, the completion re-emitted with "
                        "the same ids. Default: 3 checkpoint intervals + 300 s. Batch runs use 0.")
        ref_option(parser, "task.checkpointing.compressed", default=True, type=parse_bool,
                   help="Compress checkpoints (true/false).")
        ref_option(parser, "task.checkpointing.pause.between.seconds", default=30000, type=int,
                   help="Minimum pause between checkpoints (ms, despite the name).")
        ref_option(parser, "task.checkpointing.timeout", default=600000, type=int,
                   help="Checkpoint timeout in ms.")
        ref_option(parser, "task.restart-strategy.attempts", default=3, type=int,
                   help="Fixed-delay restart attempts before the job fails.")
        ref_option(parser, "task.restart-strategy.delay", default=30000, type=int,
                   help="Delay between restart attempts in ms.")
        ref_option(parser, "task.window.shards", default=1, type=int,
                   help="Number of shard keys events are grouped by for batched store access.")
        ref_option(parser, "threshold.batch.read.size", default=1000, type=int,
                   help="Maximum events per batch before the stores are hit.")
        ref_option(parser, "threshold.batch.read.interval", default=60, type=int,
                   help="Maximum seconds a partial batch is buffered.")
        ref_option(parser, "threshold.batch.write.size", default=10, type=int,
                   help="Rows per batched write.")


JOB_GROUPS: tuple[type[PipelineOptions], ...] = (
    ConfigFileOptions, KafkaOptions, CassandraOptions, RedisOptions, ServiceOptions,
    BatchIOOptions, TaskOptions, ProgressOptions,
)
"""The shared groups, in the order ``--help`` shows them."""


class JobOptions(ConfigFileOptions, KafkaOptions, CassandraOptions, RedisOptions, ServiceOptions,
                 BatchIOOptions, TaskOptions):
    """All shared groups in one class, so ``opts.kafka_input_topic`` works without ``view_as``.

    It subclasses the groups, not ``PipelineOptions`` directly, so Beam (which collects
    the direct subclasses) does not register its options a second time.
    """
