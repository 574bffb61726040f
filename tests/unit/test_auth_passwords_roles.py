"""Password hashing (Argon2id) and the role hierarchy of ISO NL members."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from teamnl_dashboard.auth import Member, Role, passwords, require_role
from teamnl_dashboard.auth.dependencies import current_member
from teamnl_dashboard.auth.passwords import (
    WeakPassword,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_a_password_is_stored_as_an_argon2id_hash_that_verifies_only_itself() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapl")
    assert not needs_rehash(stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("the same password") != hash_password("the same password")


def test_unknown_members_and_broken_hashes_never_verify() -> None:
    assert not verify_password(None, "not a member's password")
    assert not verify_password("not-a-hash", "anything at all")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(WeakPassword):
        hash_password("short")


@pytest.mark.parametrize(
    ("role", "required", "allowed"),
    [
        (Role.MEMBER, Role.MEMBER, True),
        (Role.MEMBER, Role.SECRETARIAT, False),
        (Role.MEMBER, Role.ADMIN, False),
        (Role.SECRETARIAT, Role.MEMBER, True),
        (Role.SECRETARIAT, Role.SECRETARIAT, True),
        (Role.SECRETARIAT, Role.ADMIN, False),
        (Role.ADMIN, Role.SECRETARIAT, True),
        (Role.ADMIN, Role.ADMIN, True),
    ],
)
def test_each_role_includes_the_rights_of_the_roles_below_it(
    role: Role, required: Role, allowed: bool
) -> None:
    assert Member(id=1, email="a@example.org", role=role).has_role(required) is allowed


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError):
        Role("superuser")


def _client_signed_in_as(role: Role) -> TestClient:
    app = FastAPI()

    @app.post("/resolve")
    async def resolve(
        member: Annotated[Member, Depends(require_role(Role.SECRETARIAT))],
    ) -> dict[str, str]:
        return {"by": member.email}

    app.dependency_overrides[current_member] = lambda: Member(1, "m@example.org", role)
    return TestClient(app)


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.MEMBER, 403),
        (Role.SECRETARIAT, 200),
        (Role.ADMIN, 200),
    ],
)
def test_require_role_answers_403_below_the_role(role: Role, status: int) -> None:
    assert _client_signed_in_as(role).post("/resolve").status_code == status


async def test_an_unknown_account_costs_one_argon2_verification_like_a_known_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So response times do not tell which e-mail addresses are members."""
    stored = hash_password("correct horse battery staple")
    calls: list[str] = []
    real = passwords._hasher

    class CountingHasher:
        def verify(self, hash_: str, password: str) -> bool:
            calls.append(hash_)
            return real.verify(hash_, password)

    monkeypatch.setattr(passwords, "_hasher", CountingHasher())
    assert not await passwords.verify_password_off_loop(None, "correct horse battery staple")
    assert await passwords.verify_password_off_loop(stored, "correct horse battery staple")
    assert len(calls) == 2 and calls[0] != stored  # the dummy hash, then the member's
