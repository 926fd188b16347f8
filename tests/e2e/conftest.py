"""Markers of the e2e tests that use the stack's Flink session cluster."""


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: runs a pipeline on the stack's Flink session cluster (localhost:8081)")
    config.addinivalue_line("markers", "slow: minutes long; not in `make test` (run by hand or from bench/)")
