"""Frames between the caller and the zygote: a 4-byte big-endian length, then a pickle.

Both ends are trusted code (model code never touches this socket), so pickle is
fine here. Loaded by file path in the zygote, like ``_confine``: standard
library only.
"""

from __future__ import annotations

import pickle
import struct

__all__ = ["frame", "unframe"]


def frame(message) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack(">I", len(payload)) + payload


def unframe(buffer: bytearray) -> list:
    """Remove every complete frame from the front of ``buffer``; return their messages."""
    messages = []
    while len(buffer) >= 4:
        (size,) = struct.unpack_from(">I", buffer)
        if len(buffer) < 4 + size:
            break
        messages.append(pickle.loads(buffer[4 : 4 + size]))
        del buffer[: 4 + size]
    return messages
