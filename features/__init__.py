"""Feature and lake table declarations, and the pure transforms that build them."""
