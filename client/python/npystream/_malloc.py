"""Process-wide malloc tuning for streaming large gRPC messages (glibc only).

glibc gives freed memory back to the kernel as soon as 128 KiB lie free at
the top of a heap, so the buffers gRPC allocates for each received message
are page-faulted in again for every fetch (measured here: a 64 MiB fetch at
0.3-0.4 GB/s instead of 0.8-1.3). Client() calls tune_malloc() once; set
NPYSTREAM_TUNE_MALLOC=0 (or glibc's own MALLOC_*_THRESHOLD_) to opt out.
"""
import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = None


def tune_malloc():
    """Keeps up to 64 MiB free per heap and serves blocks under 32 MiB from
    the heaps. Returns True when glibc took the settings. Idempotent."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if (os.environ.get("NPYSTREAM_TUNE_MALLOC", "1") == "0"
            or "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ):
        return _done
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return _done
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _done = (mallopt(_M_TRIM_THRESHOLD, 64 << 20) == 1
             and mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1)
    return _done
