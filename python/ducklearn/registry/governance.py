"""Roles, permissions and the errors a refused operation raises.

Four roles, granted per principal for one model or for every model (scope ``"*"``):

========== =====================================================================
viewer     read: list, show, load, export, history, lineage
developer  viewer + register, annotate, promote to unprotected aliases, request a
           promotion, roll back, retire, delete unprotected aliases
approver   viewer + approve or reject promotion requests (never their own)
admin      everything: archive, retention, garbage collection, roles, protected
           aliases
========== =====================================================================

A promotion to a protected alias (``production`` by default) always goes through a request
that a *different* principal with the approver (or admin) role approves. Every refusal
raises a :class:`PermissionDenied` subclass and is written to the audit log as an
``access.denied`` event.

Principals are names the caller supplies (``Registry(..., actor="alice")``, else
``$DUCKLEARN_ACTOR``, else the OS user): the registry decides what a principal may do;
proving who the caller is belongs to the deployment (OS accounts, PostgreSQL roles, the
service in front of the registry).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ROLES",
    "PERMISSIONS",
    "RegistryError",
    "NotFoundError",
    "ConflictError",
    "PermissionDenied",
    "ApprovalRequired",
    "SelfApprovalError",
    "check_principal",
    "check_alias",
]

ROLES = ("viewer", "developer", "approver", "admin")

_READ = {"read"}
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_READ),
    "developer": frozenset(_READ | {"register", "annotate", "promote", "request_promotion",
                                    "rollback", "retire", "delete_alias"}),
    "approver": frozenset(_READ | {"approve", "reject"}),
    "admin": frozenset(_READ | {"register", "annotate", "promote", "request_promotion",
                                "rollback", "retire", "delete_alias", "approve", "reject",
                                "archive", "retention", "gc", "grant", "protect"}),
}
OPERATIONS = frozenset().union(*PERMISSIONS.values())


def roles_allowing(operation: str) -> list[str]:
    return [r for r in ROLES if operation in PERMISSIONS[r]]


class RegistryError(Exception):
    """Base of the registry's errors."""


class NotFoundError(RegistryError, LookupError):
    """No such model, version, alias or request."""


class ConflictError(RegistryError):
    """The state changed under the caller (an alias moved since it was read, a request was
    already decided...) or the operation contradicts the current state."""


class PermissionDenied(RegistryError, PermissionError):
    """The principal may not do this. ``principal``, ``operation`` and ``model`` say who,
    what and where; the message says how to get the permission."""

    def __init__(self, message: str, *, principal: str, operation: str,
                 model: str | None = None):
        super().__init__(message)
        self.principal = principal
        self.operation = operation
        self.model = model


class ApprovalRequired(PermissionDenied):
    """A protected alias moves only through an approved promotion request."""


class SelfApprovalError(PermissionDenied):
    """A request must be approved by a different principal than the one who made it."""


_PRINCIPAL_RE = re.compile(r"\*|[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}")
_ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
RESERVED_ALIASES = frozenset({"latest"})


def check_principal(value: Any, argument: str = "principal") -> str:
    if not isinstance(value, str) or not _PRINCIPAL_RE.fullmatch(value):
        raise ValueError(f"{argument} {value!r} is not a valid principal: use 1-128 letters, "
                         "digits, '.', '_', '@', '+' or '-' (or '*' for everyone)")
    return value


def check_alias(value: Any, argument: str = "alias") -> str:
    if not isinstance(value, str) or not _ALIAS_RE.fullmatch(value):
        raise ValueError(f"{argument} {value!r} is not a valid alias: lower-case letters, "
                         "digits, '_' or '-', starting with a letter (e.g. 'production')")
    if value in RESERVED_ALIASES:
        raise ValueError(f"{argument} {value!r} is reserved (it always means the newest "
                         "version); pick another name")
    return value


def check_role(value: Any) -> str:
    if value not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {value!r}")
    return value
