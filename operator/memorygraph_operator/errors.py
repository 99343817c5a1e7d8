"""The operator's errors, translated to kopf's in exactly one place (:mod:`.handlers`).

::

    OperatorError
    ├── InvalidSpec          the user's resource cannot be reconciled as written (permanent)
    └── KubeError            the API server answered with an error
        ├── NotFound         404
        ├── Conflict         409 (field-manager conflict, or create of an existing object)
        ├── Invalid          422 (the server rejected our object)
        └── Unavailable      network errors, 429 and 5xx: retry later
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Invalid",
    "InvalidSpec",
    "KubeError",
    "NotFound",
    "OperatorError",
    "Unavailable",
]


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class InvalidSpec(OperatorError):
    """The resource's spec violates the API contract; retrying cannot help until it changes."""


class KubeError(OperatorError):
    """An API request failed."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    """The object (or its resource type) does not exist."""


class Conflict(KubeError):
    """The object exists already, or someone else owns the fields we apply."""


class Invalid(KubeError):
    """The API server rejected the object we sent."""


class Unavailable(KubeError):
    """The API server could not be reached or asked us to come back later."""
