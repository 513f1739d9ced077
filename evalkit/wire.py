"""Facts of the wire shared by evalkit's client side and its simulator (neither imports the other)."""

from __future__ import annotations

#: Response header by which evalkit's simulator identifies itself, however it is reached.
SIMULATOR_HEADER = "x-evalkit-simulator"
