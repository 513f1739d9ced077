"""Wire-level pieces shared by the simulator's endpoints: API ids and error responses."""

from __future__ import annotations

import secrets
import string

_BASE62 = string.digits + string.ascii_letters


def api_id(prefix: str) -> str:
    """An id in the API's style: ``msg_011C…``, ``req_011C…``, ``msgbatch_011C…``."""
    return prefix + "011C" + "".join(secrets.choice(_BASE62) for _ in range(20))


class ApiError(Exception):
    """An API error response, raised inside handlers."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.headers = headers or {}


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)
