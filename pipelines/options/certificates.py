"""The certificate family's options and settings (collection-cert-pre-processor,
collection-certificate-generator), from reference keys.

``CertOptions`` is the family's own option group (keys no other job reads); ``cert_settings``
turns a job's options into the frozen ``CertSettings`` its transforms take, so no DoFn reads
options and the rules in ``pipelines.domain.certificates`` never see Beam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.domain.certificates import DEFAULT_BAD_CHARS, StorageSettings
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.fields import add_option, parse_bool, ref_option
from pipelines.options.settings import cassandra_config, dead_letter_outages, values


class CertOptions(PipelineOptions):
    """collection-cert-pre-processor and collection-certificate-generator (reference conf keys)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "cert_domain_url", default="https://dev.sunbirded.org",
                   help="Certificate domain; basePath = <this>/certs.")
        ref_option(parser, "assessment.metrics.supported.contenttype", default="SelfAssess",
                   help="Comma-separated content types whose scores count for assessment criteria.")
        ref_option(parser, "enable.suppress.exception", default=True, type=parse_bool,
                   help="Pre-processor: content without metadata is ignored instead of failing the event. "
                        "Generator: an invalid signatory list is logged instead of failing the event.")
        ref_option(parser, "enable.rc.certificate", default=True, type=parse_bool,
                   help="Issue through Sunbird RC (the only path implemented; false fails events with a reason).")
        ref_option(parser, "cloud_storage_base_url", default="https://sunbirddev.blob.core.windows.net",
                   help="Cloud storage base URL (used when cloud_storage_cname_url is empty).")
        ref_option(parser, "cloud_store_base_path_placeholder", default="CLOUD_BASE_PATH",
                   help="Placeholder in template URLs replaced by <base url>/<content container>.")
        ref_option(parser, "content_cloud_storage_container", default="sunbird-content-staging",
                   help="Content container appended to the storage base URL.")
        ref_option(parser, "cloud_storage_cname_url", default="https://obj.dev.sunbirded.org",
                   help="CNAME of the storage; preferred over cloud_storage_base_url when set.")
        ref_option(parser, "task.rc.badcharlist", default=DEFAULT_BAD_CHARS,
                   help="Comma-separated substrings removed from every text value of the RC create request "
                        "(an escape such as \\x00 also removes the character it stands for).")
        ref_option(parser, "lms-cassandra.sbkeyspace", default="sunbird", help="Sunbird keyspace (cert_registry).")
        ref_option(parser, "lms-cassandra.certreg.table", default="cert_registry",
                   help="Legacy certificate registry table (old record deleted on re-issue when RC has none).")
        ref_option(parser, "sunbird_instance_name", default="Sunbird", help="Instance name in the SMS body.")
        ref_option(parser, "cert.claim.table", default="cert_issue_claims",
                   help="Table of the exactly-once issuance claims (lern-beam's own, in lms-cassandra.keyspace; "
                        "created by local/schema.cql, which operators apply).")
        ref_option(parser, "cert.claim.lease.secs", default=300, type=int,
                   help="Seconds after which an unfinished claim of a crashed worker may be taken over.")
        ref_option(parser, "cert.escape.xml", default=True, type=parse_bool,
                   help="XML-escape the values RC substitutes into the SVG template (names, course name).")
        ref_option(parser, "cert.http.parallelism", default=8, type=int,
                   help="Certificates a worker issues (and learners it notifies) at once: concurrent RC, "
                        "user and notification calls, each certificate still guarded by its claim "
                        "(lern-beam's own key; 1 = one at a time, as the reference).")
        ref_option(parser, "cert.backend", default="rc", choices=("rc", "vc"),
                   help="rc: issue and revoke through Sunbird RC (the reference); vc: issue Open Badges 3.0 "
                        "VC-JWTs signed here, with Bitstring Status Lists (no RC).")
        ref_option(parser, "cert.vc.key", default="",
                   help="vc backend: file of the signing key (JWK JSON or PEM; Ed25519 for EdDSA, RSA for RS256). "
                        "Empty: the key is read from $LERN_CERT_VC_KEY. The key is never logged.")
        ref_option(parser, "cert.vc.alg", default="EdDSA", choices=("EdDSA", "RS256"),
                   help="vc backend: JWS algorithm of credentials and status lists.")
        ref_option(parser, "cert.vc.issuer.id", default="did:web:dev.sunbirded.org",
                   help="vc backend: the issuer id (a did:web or URL); the key id is <this>#<JWK thumbprint>.")
        ref_option(parser, "cert.vc.issuer.name", default="Sunbird", help="vc backend: the issuer's name.")
        ref_option(parser, "cert.vc.status.base_url", default="https://dev.sunbirded.org/certs/status",
                   help="vc backend: where status lists are published: <this>/<list>/<purpose>.")
        ref_option(parser, "cert.vc.status.list", default="1",
                   help="vc backend: the status list new credentials get an index in (131,072 entries).")
        ref_option(parser, "cert.vc.publish.dir", default="",
                   help="vc backend: directory lern-cert-status-lists writes the signed status lists to.")
        ref_option(parser, "cert.status.update.enrolment", default=False, type=parse_bool,
                   help="certificate-status-updater: also remove a revoked certificate from "
                        "user_enrolments.issued_certificates (default: left there, as the reference leaves it).")
        ref_option(parser, "cert.status.table", default="certificate_status",
                   help="Table of issued credentials and their status (lern-beam's own, in "
                        "lms-cassandra.keyspace; local/schema.cql).")


class CertBulkOptions(PipelineOptions):
    """lern-cert-bulk-status: the change a bulk run requests (selection: --course_id, --batch_id)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_option(parser, "bulk_change", default="revoke", choices=("revoke", "suspend", "unsuspend"),
                   help="The change requested for every selected certificate.")
        add_option(parser, "bulk_reason", default="", help="The reason written on every request.")
        add_option(parser, "bulk_requested_by", default="", help="The operator (user id) requesting the change.")
        add_option(parser, "bulk_requested_at", default=None, type=int,
                   help="requestedAt of every request (epoch ms; default: now). Re-running with the same value "
                        "and selection produces the same requests, which the status updater then skips.")
        add_option(parser, "bulk_issued_from", default=None, type=int,
                   help="Only certificates issued at or after this time (epoch ms).")
        add_option(parser, "bulk_issued_to", default=None, type=int,
                   help="Only certificates issued before this time (epoch ms).")


@dataclass(frozen=True)
class CertSettings:
    job_name: str
    cassandra: CassandraConfig
    tables: dict[str, str]
    content_base: str
    learner_base: str
    content_read_api: str
    user_read_api: str
    rc_base: str
    rc_entity: str
    rc_api_key: str
    cert_domain_url: str
    storage: StorageSettings
    assessment_types: tuple[str, ...] = ("SelfAssess",)
    suppress_exception: bool = True
    rc_enabled: bool = True
    bad_chars: str = DEFAULT_BAD_CHARS
    sb_keyspace: str = "sunbird"
    certreg_table: str = "cert_registry"
    instance_name: str = "Sunbird"
    claim_table: str = "cert_issue_claims"
    lease_secs: int = 300
    escape_xml: bool = True
    backend: str = "rc"
    status_table: str = "certificate_status"
    status_update_enrolment: bool = False
    vc_key: str = ""
    vc_alg: str = "EdDSA"
    vc_issuer_id: str = "did:web:dev.sunbirded.org"
    vc_issuer_name: str = "Sunbird"
    vc_status_base_url: str = "https://dev.sunbirded.org/certs/status"
    vc_status_list: str = "1"
    vc_publish_dir: str = ""
    http_timeout_secs: float = 10.0
    http_retries: int = 3
    http_parallelism: int = 8
    collection_cache: RedisConfig | None = None  # course metadata (reference: redis.host, collectionCache.id)
    content_cache: RedisConfig | None = None  # content metadata (reference: redis-meta.host, contentCache.id)
    dead_letter_outages: bool = True  # batch; streaming waits an outage out (restart from checkpoint)


def content_types(value: Any) -> tuple[str, ...]:
    """``assessment.metrics.supported.contenttype``: a comma list, or a HOCON list written as text."""
    return tuple(t.strip() for t in str(value).strip("[]").replace('"', "").split(",") if t.strip())


def cert_settings(opts: PipelineOptions, job_name: str) -> CertSettings:
    """The settings both certificate jobs build from their options (reference keys)."""
    o = values(opts)
    return CertSettings(
        dead_letter_outages=dead_letter_outages(opts),
        job_name=job_name, cassandra=cassandra_config(opts),
        tables={"course_batch": o["lms_cassandra_course_batch_table"],
                "enrolments": o["lms_cassandra_user_enrolments_table"],
                "activity_agg": o["lms_cassandra_user_activity_agg_table"]},
        content_base=o["service_content_basepath"], learner_base=o["service_learner_basepath"],
        content_read_api=o.get("content_read_api") or "/content/v3/read",
        user_read_api=o.get("user_read_api") or "/private/user/v1/read",
        rc_base=o["service_rc_basepath"], rc_entity=o["service_rc_entity"], rc_api_key=o["service_rc_rcapikey"],
        cert_domain_url=o["cert_domain_url"],
        storage=StorageSettings(placeholder=o["cloud_store_base_path_placeholder"],
                                base_url=o["cloud_storage_base_url"], cname_url=o["cloud_storage_cname_url"] or "",
                                container=o["content_cloud_storage_container"]),
        assessment_types=content_types(o["assessment_metrics_supported_contenttype"]),
        suppress_exception=bool(o["enable_suppress_exception"]), rc_enabled=bool(o["enable_rc_certificate"]),
        bad_chars=o["task_rc_badcharlist"], sb_keyspace=o["lms_cassandra_sbkeyspace"],
        certreg_table=o["lms_cassandra_certreg_table"], instance_name=o["sunbird_instance_name"],
        claim_table=o["cert_claim_table"], lease_secs=int(o["cert_claim_lease_secs"]),
        escape_xml=bool(o["cert_escape_xml"]), backend=o["cert_backend"], status_table=o["cert_status_table"],
        status_update_enrolment=bool(o["cert_status_update_enrolment"]),
        vc_key=o["cert_vc_key"], vc_alg=o["cert_vc_alg"], vc_issuer_id=o["cert_vc_issuer_id"],
        vc_issuer_name=o["cert_vc_issuer_name"], vc_status_base_url=o["cert_vc_status_base_url"],
        vc_status_list=o["cert_vc_status_list"], vc_publish_dir=o["cert_vc_publish_dir"],
        http_timeout_secs=float(o["http_timeout_secs"]),
        http_retries=int(o["http_retries"]), http_parallelism=max(1, int(o["cert_http_parallelism"])),
        collection_cache=RedisConfig(host=o["redis_host"], port=int(o["redis_port"]),
                                     db=int(o["redis_database_collectioncache_id"])),
        content_cache=RedisConfig(host=o["redis_meta_host"], port=int(o["redis_meta_port"]),
                                  db=int(o["redis_database_contentcache_id"])))
