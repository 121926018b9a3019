"""TensorInfo: what the server says about a stored tensor."""
from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    handle: str
    name: str
    dtype: np.dtype
    shape: Tuple[int, ...]
    nbytes: int
    npy_bytes: int
    device: str
    created_unix_ms: int
    expires_unix_ms: int

    @classmethod
    def from_proto(cls, p):
        return cls(handle=p.handle, name=p.name, dtype=np.dtype(p.dtype),
                   shape=tuple(p.shape), nbytes=p.nbytes,
                   npy_bytes=p.npy_bytes, device=p.device,
                   created_unix_ms=p.created_unix_ms,
                   expires_unix_ms=p.expires_unix_ms)
