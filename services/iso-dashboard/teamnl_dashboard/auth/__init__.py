"""ISO NL members, sessions, roles and CSRF protection of the dashboard."""

from .dependencies import CurrentMember, NotAuthenticated, current_member, require_role
from .install import install_auth
from .members import Member, MemberError, create_member
from .roles import Role

__all__ = [
    "CurrentMember",
    "Member",
    "MemberError",
    "NotAuthenticated",
    "Role",
    "create_member",
    "current_member",
    "install_auth",
    "require_role",
]
