"""The pure parts of sign-in throttling: the bounded back-off and what an address counts as."""

from __future__ import annotations

from teamnl_dashboard.auth.throttle import LoginKeys, LoginThrottle, client_network


def test_the_lockout_starts_at_the_limit_doubles_and_is_capped() -> None:
    policy = LoginThrottle(lockout_seconds=30, max_lockout_seconds=900)
    lockouts = [policy.lockout(failures, limit=5) for failures in range(1, 12)]
    assert lockouts == [None, None, None, None, 30, 60, 120, 240, 480, 900, 900]
    assert policy.lockout(10**6, limit=5) == 900  # no overflow, however long the attack


def test_an_ipv6_client_counts_as_its_64_and_a_mapped_ipv4_as_the_ipv4() -> None:
    assert client_network("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert client_network(None) == "unknown"


def test_the_account_key_ignores_case_and_spaces_and_keeps_no_text() -> None:
    keys = LoginKeys.of(" Reader@Example.org ", "192.0.2.7")
    assert keys == LoginKeys.of("reader@example.org", "192.0.2.7")
    assert "reader" not in keys.account and len(keys.account) == 64
