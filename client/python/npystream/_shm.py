"""The same-host path: tensors as .npy files in the daemon's --shm-dir,
mapped into this process instead of streamed."""
import logging
import mmap
import os
import threading
from typing import Any, List, Optional

import numpy as np

from ._types import Array

_log = logging.getLogger("npystream")
# Reads this large are split across threads (preadv releases the GIL): on
# this 2-core VM two threads move ~2x the bytes of one, and each faults in its
# own part of the destination.
_PARALLEL_BYTES = 16 << 20
_MAX_THREADS = 4
# One read(2)/write(2) moves at most this much (Linux caps a call at 2 GiB - 4 KiB).
_WRITE_BYTES = 1 << 30


class SharedFolder:
    """The daemon's shm folder as this process sees it, once checked: the
    marker file's device and inode must be the daemon's (a path alone could
    name another host's or container's folder)."""

    def __init__(self, response: Any) -> None:
        self.dir: str = response.dir
        self.marker_path: str = response.marker_path
        self.device: int = response.marker_device
        self.inode: int = response.marker_inode

    @classmethod
    def check(cls, response: Any) -> Optional["SharedFolder"]:
        """A SharedFolder when this process sees the daemon's folder, else None
        (and a debug line saying why, once per client)."""
        folder = cls(response)
        if not folder.marker_path:  # the daemon has no --shm-dir
            return None
        try:
            st = os.stat(folder.marker_path, follow_symlinks=False)
        except OSError as err:
            _log.debug("npystream: shm folder %s not visible here (%s); streaming instead",
                       folder.dir, err.strerror)
            return None
        if (st.st_dev, st.st_ino) != (folder.device, folder.inode):
            _log.debug("npystream: %s is not the daemon's shm folder (device/inode differ); "
                       "streaming instead", folder.dir)
            return None
        return folder


def _open(path: str, writable: bool) -> int:
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags)


def map_file(response: Any) -> Array:
    """A read-only ndarray over the tensor's file (no copy). Raises OSError."""
    info = response.info
    dtype = np.dtype(info.dtype)
    shape = tuple(info.shape)
    if info.nbytes == 0:
        arr = np.empty(shape, dtype)
        arr.flags.writeable = False
        return arr
    fd = _open(response.path, writable=False)
    try:
        mm = mmap.mmap(fd, response.npy_bytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    # The ndarray keeps the mapping alive (its base); it is read-only
    # because the mapping is.
    return np.ndarray(shape, dtype, buffer=mm, offset=response.data_offset)


def _parallel_read(fd: int, dst: Array, offset: int) -> None:
    """Fills the C-contiguous array `dst` from the file at `offset` with
    preadv(2), in threads (page-aligned pieces of the destination)."""
    flat = dst.reshape(-1).view(np.uint8).data
    n = len(flat)
    threads = min(_MAX_THREADS, os.cpu_count() or 1, max(1, n // _PARALLEL_BYTES))
    step = -(-n // threads) + 4095 & ~4095

    errors: List[OSError] = []

    def read(start: int) -> None:
        end, at = min(n, start + step), start
        try:
            while at < end:
                got = os.preadv(fd, [flat[at:min(end, at + _WRITE_BYTES)]], offset + at)
                if got == 0:
                    raise OSError(0, f"the file ended {n - at} bytes before the payload did")
                at += got
        except OSError as err:
            errors.append(err)

    workers = [threading.Thread(target=read, args=(i,)) for i in range(step, n, step)]
    for w in workers:
        w.start()
    read(0)
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


def copy_from_file(response: Any, out: Optional[Array] = None) -> Array:
    """The tensor as a new (or the given) writeable ndarray: one copy, read
    from the file (not copied out of a mapping: each 4 KiB page of a mapping
    costs a page fault, which on some VMs made this 3-5x slower). Raises
    OSError."""
    info = response.info
    if out is None:
        out = np.empty(tuple(info.shape), np.dtype(info.dtype))
    if info.nbytes:
        fd = _open(response.path, writable=False)
        try:
            _parallel_read(fd, out, response.data_offset)
        finally:
            os.close(fd)
    return out


def write_into_file(response: Any, array: Array) -> None:
    """Writes `array` into an allocated file's payload (write(2): no page
    faults, the pages the daemon allocated are filled in place). Raises
    OSError."""
    if response.info.nbytes == 0:
        return
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    data = array.reshape(-1).view(np.uint8).data
    fd = _open(response.path, writable=True)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:done + _WRITE_BYTES], response.data_offset + done)
    finally:
        os.close(fd)
