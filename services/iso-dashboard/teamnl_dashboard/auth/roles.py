"""Roles of ISO NL members. Each role includes the rights of the roles before it."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    MEMBER = "member"  # reads the dashboard
    SECRETARIAT = "secretariat"  # also acknowledges and resolves findings
    ADMIN = "admin"  # also manages members

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def includes(self, required: Role | str) -> bool:
        return self.rank >= Role(required).rank


_ORDER = [Role.MEMBER, Role.SECRETARIAT, Role.ADMIN]
