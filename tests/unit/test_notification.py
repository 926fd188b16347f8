"""notification-job pure rules: templates, routing, validation, the iteration/retry rule, payloads."""

from __future__ import annotations

import pytest

from pipelines import notification
from pipelines.domain import notification as N
from pipelines.io import senders
from pipelines.options import notification as NO


def request(mode="email", ids=("ann@example.org",), data="Hello $name", params=None, iteration=1, **config):
    return {"eid": "BE_JOB_REQUEST", "mid": "NS.1.abc",
            "edata": {"action": N.ACTION, "iteration": iteration,
                      "request": {"notification": {"mode": mode, "ids": list(ids) if ids is not None else None,
                                                   "config": config,
                                                   "template": {"data": data, "params": params or {}}}}}}


# ---------------------------------------------------------------- templates

def test_render_substitutes_velocity_references():
    out = N.render("Hi $name, ${course} on $date.", {"name": "Ann", "course": "Maths", "date": 12}, html_body=False)
    assert out == "Hi Ann, Maths on 12."


def test_render_leaves_unknown_references_and_quiet_ones_empty():
    assert N.render("$known $unknown $!quiet ${also}", {"known": "k"}, html_body=False) == "k $unknown  ${also}"


def test_render_escapes_html_values_only_in_html_bodies():
    params = {"name": '<script>alert("x")</script>&'}
    assert N.render("<p>$name</p>", params, html_body=True) == \
        "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;</p>"
    assert N.render("$name", params, html_body=False) == params["name"]


def test_render_never_re_expands_values_no_format_string_injection():
    params = {"a": "$b {0} %s ${b} {__class__}", "b": "SECRET"}
    assert N.render("$a", params, html_body=False) == "$b {0} %s ${b} {__class__}"
    # braces and percent signs in the template itself are literal text
    assert N.render("{0} %(x)s {name} $a", {"a": "1"}, html_body=False) == "{0} %(x)s {name} 1"


def test_render_non_string_values():
    assert N.render("$l $d $t $n", {"l": ["x", 1], "d": {"k": "v"}, "t": True, "n": None}, html_body=False) == \
        '["x",1] {"k":"v"} true '


# ---------------------------------------------------------------- routing and validation

@pytest.mark.parametrize("mode,expected", [("email", "email"), ("EMAIL", "email"), (" Phone ", "phone"),
                                           ("device", "device"), ("Device", "device")])
def test_mode_routing_is_case_insensitive(mode, expected):
    ids = {"email": ["ann@example.org"], "phone": ["9876543210"], "device": ["tok-1"]}[expected]
    assert N.parse_notification(request(mode=mode, ids=ids)).mode == expected


def test_email_request_subject_and_html_body():
    n = N.parse_notification(request(data="<b>$name</b>", params={"name": "A&B"}, subject="For $name\r\nBcc: x@y"))
    assert n.ids == ("ann@example.org",) and n.text == "<b>A&amp;B</b>"
    assert n.subject == "For A&B Bcc: x@y"  # one line: no header injection


@pytest.mark.parametrize("event,reason", [
    (request(mode="fax"), "unknown notification mode"),
    (request(mode=None), "unknown notification mode"),
    (request(ids=None), "without ids"),
    (request(ids=[]), "without ids"),
    (request(ids=["not-an-address"]), "invalid email"),
    (request(ids=["a@example.org", "Eve <eve@example.org>"]), "invalid email"),
    (request(ids=["a@example.org\r\nRCPT TO:<x@y>"]), "invalid email"),
    (request(mode="phone", ids=["12345"]), "invalid phone"),
    (request(mode="phone", ids=["9876543210"], data=""), "empty text"),
    (request(mode="device", ids=[]), "without ids or config.topic"),
    (request(ids=[1, 2]), "not a list of strings"),
])
def test_requests_that_can_never_be_sent_are_invalid(event, reason):
    with pytest.raises(N.InvalidNotification, match=reason):
        N.parse_notification(event)


def test_missing_notification_object_is_invalid():
    ev = request()
    ev["edata"]["request"] = {}
    with pytest.raises(N.InvalidNotification):
        N.parse_notification(ev)


@pytest.mark.parametrize("edata", [None, {}, {"action": "other"}, {"action": None}])
def test_other_events_are_skipped(edata):
    with pytest.raises(N.Skip):
        N.parse_notification({"edata": edata})


def test_device_topic_notification():
    ev = request(mode="device", ids=[], topic="news")
    ev["edata"]["request"]["notification"]["rawData"] = {"title": "t"}
    n = N.parse_notification(ev)
    assert N.fcm_payload(n) == {"data": {"title": "t"}, "dry_run": False, "to": "/topics/news"}
    n2 = N.parse_notification(request(mode="device", ids=["d1", "d2"]))
    assert N.fcm_payload(n2) == {"data": {}, "dry_run": False, "registration_ids": ["d1", "d2"]}


def test_valid_email_and_phone():
    assert N.valid_email("a.b+c@sub.example.org")
    for bad in ("", "a@", "@b.org", "a b@c.org", "a@b.org ", "<a@b.org>", "a@b.org,c@d.org", None):
        assert not N.valid_email(bad)
    assert N.valid_phone("9876543210") and N.valid_phone("+919876543210")
    assert not N.valid_phone("98765") and not N.valid_phone("98765abcde")


# ---------------------------------------------------------------- iteration / retry rule

def test_retry_increments_iteration_until_the_maximum():
    ev = request(iteration=1)
    again = N.retry_event(ev, max_iterations=3)
    assert again["edata"]["iteration"] == 2 and ev["edata"]["iteration"] == 1  # a copy
    again2 = N.retry_event(again, max_iterations=3)
    assert again2["edata"]["iteration"] == 3
    assert N.retry_event(again2, max_iterations=3) is None
    assert again2["mid"] == ev["mid"] and again2["edata"]["request"] == ev["edata"]["request"]


def test_reference_default_two_iterations_allows_one_retry():
    assert N.retry_event(request(iteration=1), N.DEFAULT_MAX_ITERATIONS)["edata"]["iteration"] == 2
    assert N.retry_event(request(iteration=2), N.DEFAULT_MAX_ITERATIONS) is None


@pytest.mark.parametrize("value,expected", [(None, 1), ("3", 3), (True, 1), ("x", 1), (4, 4)])
def test_iteration_of(value, expected):
    ev = request()
    ev["edata"]["iteration"] = value
    assert N.iteration_of(ev) == expected


def test_dedup_keys_cover_every_iteration_after_a_send():
    ev = request(iteration=2)
    assert N.dedup_key(ev) == "notification:NS.1.abc:2"
    assert N.sent_keys(ev, 2) == ["notification:NS.1.abc:0", "notification:NS.1.abc:1", "notification:NS.1.abc:2"]
    assert N.dedup_key({"edata": {}}) is None and N.sent_keys({}, 2) == []


# ---------------------------------------------------------------- payloads

def test_sms_payload_is_msg91_bulk_with_java_url_encoding():
    n = N.parse_notification(request(mode="phone", ids=["9876543210"], data="Done: $c ~ok* 100%",
                                     params={"c": "A&B"}))
    assert N.sms_payload(n, "TesSun", "4", "91") == {
        "sender": "TesSun", "route": "4", "country": "91",
        "sms": [{"message": "Done%3A+A%26B+%7Eok*+100%25", "to": ["9876543210"]}]}


def test_email_message_single_recipient_to_many_bcc():
    one = N.build_email(N.parse_notification(request(subject="S")), "from@example.org")
    assert one["To"] == "ann@example.org" and one["From"] == "from@example.org" and one["Subject"] == "S"
    assert one.get_content_type() == "text/html"
    many = N.build_email(N.parse_notification(request(ids=["a@example.org", "b@example.org"])), "f@example.org")
    assert many["To"] is None and many["Bcc"] is None


def test_channel_config_repr_hides_secrets():
    cfg = senders.ChannelConfig(smtp_password="hunter2", sms_auth_key="k1", fcm_account_key="k2")
    assert "hunter2" not in repr(cfg) and "k1" not in repr(cfg)


def test_defaults_follow_the_env():
    d = notification.defaults("dev")
    assert d["kafka.input.topic"] == "dev.lms.notification" and d["kafka.groupId"] == "dev.lms.notification.group"


def test_password_comes_from_the_sdk_env_variable(monkeypatch):
    from pipelines import job
    monkeypatch.setenv("sunbird_mail_server_password", "from-env")
    opts = job.job_options([], notification.defaults, (NO.NotificationOptions,))
    cfg = NO.channel_config(opts)
    assert cfg.smtp_password == "" and senders.Senders(cfg).smtp_password == "from-env"  # read on the worker only
    opts = job.job_options(["--mail_server_password=flag"], notification.defaults, (NO.NotificationOptions,))
    assert senders.Senders(NO.channel_config(opts)).smtp_password == "flag"


def test_reference_style_conf_with_blank_mail_settings(tmp_path, monkeypatch):
    from pipelines import job
    conf = tmp_path / "n.conf"
    conf.write_text('kafka { input.topic = "qa.lms.notification" }\nmail_server_port = ""\nmail_server_host = ""\n'
                    'sms_default_sender = "LERNSM"\n')
    monkeypatch.setenv("sunbird_mail_server_port", "2600")
    opts = job.job_options(["--config", str(conf)], notification.defaults, (NO.NotificationOptions,))
    cfg = NO.channel_config(opts)
    assert (cfg.smtp_host, cfg.smtp_port, cfg.sms_sender) == ("localhost", 2600, "LERNSM")
    assert job.values(opts)["kafka_input_topic"] == "qa.lms.notification"


# ---------------------------------------------------------------- issue 12: a hostile edata.iteration

@pytest.mark.parametrize("value", [3_000_000, 10**40, 1e40, -1, 3, 2.5, 2.0, "2.5", "x", "9" * 5000, True, [1], {}])
def test_absurd_iterations_are_rejected_with_a_reason(value):
    ev = request()
    ev["edata"]["iteration"] = value
    with pytest.raises(N.InvalidNotification, match=r"edata.iteration must be a whole number from 0 to 2"):
        N.parse_notification(ev, max_iterations=2)
    with pytest.raises(N.InvalidNotification):
        N.RequestParser(2)(ev)


@pytest.mark.parametrize("value,expected", [(None, 1), (0, 0), (1, 1), (2, 2), ("2", 2), (" 1 ", 1)])
def test_iterations_within_the_maximum_are_accepted(value, expected):
    ev = request()
    ev["edata"]["iteration"] = value
    assert N.check_iteration(ev["edata"], 2) == expected
    assert N.RequestParser(2)(ev) == [ev]


def test_missing_iteration_is_the_first_attempt():
    ev = request()
    del ev["edata"]["iteration"]
    assert N.check_iteration(ev["edata"], 2) == 1 and N.parse_notification(ev).mode == "email"


def test_sent_keys_never_exceed_the_maximum_whatever_the_event_says():
    # Before the fix: one key per iteration up to the event's own value (3,000,001 keys here).
    ev = request(iteration=3_000_000)
    assert N.sent_keys(ev, 2) == ["notification:NS.1.abc:0", "notification:NS.1.abc:1", "notification:NS.1.abc:2"]
    assert len(N.sent_keys(request(iteration=10**40), 5)) == 6
    assert len(N.sent_keys(request(), 10**9)) == N.MAX_ITERATIONS_LIMIT + 1


def test_iteration_of_never_parses_a_huge_digit_string():
    ev = request()
    ev["edata"]["iteration"] = "9" * 100_000  # int() of this would raise (or take long) in Python 3.11
    assert N.iteration_of(ev) == 1


@pytest.mark.parametrize("count", [0, -1, N.MAX_ITERATIONS_LIMIT + 1])
def test_max_iteration_count_out_of_range_is_refused_at_startup(count):
    from pipelines import job
    opts = job.job_options([f"--max_iteration_count={count}"], notification.defaults, (NO.NotificationOptions,))
    with pytest.raises(ValueError, match="max_iteration_count must be 1 to 100"):
        NO.notification_settings(opts)


def test_settings_from_options():
    from pipelines import job
    opts = job.job_options(["--max_iteration_count=3", "--notification_dedup_enabled=false"], notification.defaults,
                           (NO.NotificationOptions,))
    s = NO.notification_settings(opts)
    assert (s.max_iterations, s.dedup_enabled, s.dedup_expiry_secs) == (3, False, 604800)
    assert s.channels.smtp_port == 2525


def test_senders_are_a_context_manager_and_hide_secrets(monkeypatch):
    monkeypatch.delenv("sunbird_msg_91_auth", raising=False)
    cfg = senders.ChannelConfig(smtp_password="hunter2", sms_auth_key="", fcm_account_key="k2")
    with senders.Senders(cfg) as s:
        assert "hunter2" not in repr(s) and "k2" not in repr(s)
        with pytest.raises(senders.SmsFailed, match="sms_auth_key is not configured"):
            s.sms.send({"sms": []})
    assert s.http._session is None
    with pytest.raises(ValueError, match="smtp_tls"):
        senders.ChannelConfig(smtp_tls="tls1.0")
