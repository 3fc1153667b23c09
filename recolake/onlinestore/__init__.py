"""THE online-store contract: everything that crosses the batch/online seam through Redis.

One package owns it, so the publish job, the streaming job and the API cannot drift apart:

- ``keys``: the key layout (publications under a version namespace, real-time documents per
  subject), subject naming (user vs anonymous session) and the hashing of client event ids
  out of key names;
- ``ttl``: how long each kind of key lives (:class:`~recolake.onlinestore.ttl.TtlPolicy`);
- ``client``: the one cluster-aware ``connect()`` (sync and async), with connect/socket
  timeouts and a blocking pool, so a stalled Redis never piles requests up;
- ``codecs``: versioned encoders/decoders of every value;
- ``batch`` (BatchWriter: the publish job), ``stream`` (StreamWriter: the streaming job) and
  ``reader`` (the API's async Reader).

Imports no pyspark: the API and the Spark executors both use it.
"""

from recolake.onlinestore.client import RedisTimeouts, connect, connect_async, is_cluster_url
from recolake.onlinestore.keys import (
    NEIGHBOUR_KINDS,
    SESSION_PREFIX,
    USER_PREFIX,
    KeyLayout,
    event_token,
    session_subject,
    subject_kind,
    user_subject,
)
from recolake.onlinestore.ttl import TtlPolicy

__all__ = [
    "NEIGHBOUR_KINDS",
    "SESSION_PREFIX",
    "USER_PREFIX",
    "KeyLayout",
    "RedisTimeouts",
    "TtlPolicy",
    "connect",
    "connect_async",
    "event_token",
    "is_cluster_url",
    "session_subject",
    "subject_kind",
    "user_subject",
]
