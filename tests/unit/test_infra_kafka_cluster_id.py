"""A new broker's cluster id, given to Kafka's storage tool on its first start: Kafka's own
form, and never one the tool would read as an option (a first start then failed with
"argument --cluster-id/-t: expected one argument")."""

from __future__ import annotations

import base64
import uuid

import pytest

from teamnl_suite.infra import kafka


def test_an_id_that_would_start_with_a_dash_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # 0xf8 encodes as "-" first
    plain = uuid.UUID(bytes=b"\x10" + bytes(15))
    drawn = iter([dashed, dashed, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))

    cluster_id = kafka._cluster_id()

    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert len(cluster_id) == 22  # 16 bytes, no padding: what Kafka's Uuid prints


def test_ids_are_new_each_time() -> None:
    ids = {kafka._cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert not any(cluster_id.startswith("-") for cluster_id in ids)
