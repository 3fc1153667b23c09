"""How long each kind of online key lives. Publications are permanent while live and expire a
grace period after they are replaced (batch.go_live); everything per subject expires."""

from __future__ import annotations

from dataclasses import dataclass

from recolake.onlinestore.keys import subject_kind


@dataclass(frozen=True)
class TtlPolicy:
    user_seconds: int = 30 * 86400
    session_seconds: int = 12 * 3600
    dedupe_seconds: int = 2 * 86400
    staging_seconds: int = 6 * 3600

    @classmethod
    def from_settings(cls, settings) -> TtlPolicy:
        return cls(
            user_seconds=int(settings.realtime_user_ttl_hours * 3600),
            session_seconds=int(settings.realtime_session_ttl_hours * 3600),
            dedupe_seconds=int(settings.stream_dedupe_ttl_seconds),
        )

    def for_subject(self, subject: str) -> int:
        """TTL of a subject's real-time documents (refreshed by every write)."""
        return self.user_seconds if subject_kind(subject) == "user" else self.session_seconds
