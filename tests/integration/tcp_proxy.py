"""The TCP proxy the integration tests put in front of PostgreSQL lives in bench/ (the fault
run uses it too); re-exported here so tests keep importing ``tcp_proxy``."""

from bench.tcp_proxy import TcpProxy

__all__ = ["TcpProxy"]
