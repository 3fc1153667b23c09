"""Deprecated location: the key layout lives in recolake.onlinestore.keys (kept only until
every caller imports it from there)."""

from recolake.onlinestore.keys import NEIGHBOUR_KINDS, KeyLayout

RedisLayout = KeyLayout

__all__ = ["NEIGHBOUR_KINDS", "KeyLayout", "RedisLayout"]
