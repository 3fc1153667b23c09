"""Erasure requests: the API's DELETE /v1/users/{id} leaves one durable file per request for
the batch side (`recolake forget --pending`), which erases the user from the lake.

A request names the user by the pseudonymised key only (the raw id never reaches this
directory): every table, landing file and Redis key the forget job cleans can be matched by
that key. Files are written like the event log's (hidden temp file, fsync, atomic rename), so
a crash leaves either a whole request or none.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SUFFIX = ".json"


@dataclass(frozen=True)
class ErasureRequest:
    user_key: str
    requested_at: datetime
    source: str  # "api" | "cli"
    path: Path | None = None


class ErasureRequests:
    """A directory of pending erasure requests."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def add(self, user_key: str, source: str = "api", now: datetime | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        when = (now or datetime.now(UTC)).isoformat()
        name = f"erase-{uuid.uuid4().hex}{_SUFFIX}"
        tmp, final = self.directory / f".{name}.tmp", self.directory / name
        body = json.dumps({"user_key": user_key, "requested_at": when, "source": source})
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final

    def pending(self) -> list[ErasureRequest]:
        """Every complete request, oldest first (a malformed file is an error: never skipped)."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob(f"erase-*{_SUFFIX}")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            out.append(
                ErasureRequest(
                    str(doc["user_key"]),
                    datetime.fromisoformat(doc["requested_at"]),
                    str(doc.get("source", "api")),
                    path,
                )
            )
        return sorted(out, key=lambda r: r.requested_at)

    @staticmethod
    def done(request: ErasureRequest) -> None:
        if request.path is not None:
            request.path.unlink(missing_ok=True)
