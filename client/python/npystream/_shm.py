"""The same-host path: tensors as .npy files in the daemon's --shm-dir,
mapped into this process instead of streamed."""
import logging
import mmap
import os
import threading

import numpy as np

_log = logging.getLogger("npystream")
# Copies this large are split across threads (numpy releases the GIL while
# copying): on this 2-core VM two threads move ~2x the bytes of one, and each
# faults in its own half of the source and destination pages.
_PARALLEL_BYTES = 16 << 20
_MAX_THREADS = 4
# One write(2) moves at most this much (Linux caps a call at 2 GiB - 4 KiB).
_WRITE_BYTES = 1 << 30


class SharedFolder:
    """The daemon's shm folder as this process sees it, once checked: the
    marker file's device and inode must be the daemon's (a path alone could
    name another host's or container's folder)."""

    def __init__(self, response):
        self.dir = response.dir
        self.marker_path = response.marker_path
        self.device = response.marker_device
        self.inode = response.marker_inode

    @classmethod
    def check(cls, response):
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


def _open(path, writable):
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags)


def map_file(response):
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


def _parallel_copy(dst, src):
    """np.copyto of two C-contiguous arrays of one shape, in threads."""
    flat_dst, flat_src = dst.reshape(-1).view(np.uint8), src.reshape(-1).view(np.uint8)
    n = flat_dst.nbytes
    threads = min(_MAX_THREADS, os.cpu_count() or 1, max(1, n // _PARALLEL_BYTES))
    if threads == 1:
        np.copyto(flat_dst, flat_src)
        return
    step = -(-n // threads) + 4095 & ~4095  # page-aligned pieces
    workers = [threading.Thread(target=np.copyto, args=(flat_dst[i:i + step], flat_src[i:i + step]))
               for i in range(step, n, step)]
    for w in workers:
        w.start()
    np.copyto(flat_dst[:step], flat_src[:step])
    for w in workers:
        w.join()


def copy_from_file(response, out=None):
    """The tensor as a new (or the given) writeable ndarray: one copy."""
    view = map_file(response)
    if out is None:
        out = np.empty(view.shape, view.dtype)
    if view.size:
        _parallel_copy(out, view)
    return out


def write_into_file(response, array):
    """Writes `array` into an allocated file's payload (write(2): no page
    faults, the pages the daemon allocated are filled in place). Raises
    OSError."""
    if response.info.nbytes == 0:
        return
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    data = memoryview(array.reshape(-1).view(np.uint8))
    fd = _open(response.path, writable=True)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:done + _WRITE_BYTES], response.data_offset + done)
    finally:
        os.close(fd)
