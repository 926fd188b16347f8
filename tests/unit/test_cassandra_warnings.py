import logging

from pipelines.io.cassandra import BatchWarningsOnce


def _record(msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord("cassandra.protocol", logging.WARNING, __file__, 1, msg, args, None)


def test_batch_warnings_are_logged_once_per_kind_and_others_always():
    f = BatchWarningsOnce()
    unlogged = "Server warning: Unlogged batch covering %d partitions detected against tables [ks.t]."
    size = "Server warning: Batch for [ks.t] is of size 14871, exceeding specified threshold of 5120 by 9751."
    first = _record(unlogged, 50)
    assert f.filter(first)
    assert "50 partitions" in first.getMessage() and "not logged" in first.getMessage()
    assert not f.filter(_record(unlogged, 12))
    assert f.filter(_record(size)) and not f.filter(_record(size))
    assert f.filter(_record("Server warning: Aggregation query used without partition key"))
    assert f.filter(_record("Server warning: Aggregation query used without partition key"))
