"""The API's logic, out of the routers: a service takes parsed arguments and the Reader and
returns a response document, or raises one of the errors below (the app turns them into
ErrorResponse answers: online/app.py)."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class NotFoundError(ServiceError):
    status_code = 404


class UnavailableError(ServiceError):
    """503 + Retry-After: Redis did not answer in time, or nothing is published."""

    status_code = 503

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after
