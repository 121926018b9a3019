"""TensorInfo: what the server says about a stored tensor."""
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A stored tensor: its handle (what fetch and release take), the name it
    was given, dtype and shape, payload and .npy sizes in bytes, the device
    it lives on, and when it was stored and expires (Unix ms; 0: never)."""

    handle: str
    name: str
    dtype: "np.dtype[Any]"
    shape: Tuple[int, ...]
    nbytes: int
    npy_bytes: int
    device: str
    created_unix_ms: int
    expires_unix_ms: int

    @classmethod
    def from_proto(cls, p: Any) -> "TensorInfo":
        """From an npystream.v1.TensorInfo message."""
        return cls(handle=p.handle, name=p.name, dtype=np.dtype(p.dtype),
                   shape=tuple(p.shape), nbytes=p.nbytes,
                   npy_bytes=p.npy_bytes, device=p.device,
                   created_unix_ms=p.created_unix_ms,
                   expires_unix_ms=p.expires_unix_ms)
