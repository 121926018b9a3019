"""The same-host path: tensors as .npy files in the daemon's --shm-dir,
mapped into this process instead of streamed."""
import logging
import mmap
import os

import numpy as np

_log = logging.getLogger("npystream")
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


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


def map_file(response, populate=False):
    """A read-only ndarray over the tensor's file (no copy). `populate` maps
    every page now (for a copy that follows). Raises OSError."""
    info = response.info
    dtype = np.dtype(info.dtype)
    shape = tuple(info.shape)
    if info.nbytes == 0:
        arr = np.empty(shape, dtype)
        arr.flags.writeable = False
        return arr
    fd = _open(response.path, writable=False)
    try:
        mm = mmap.mmap(fd, response.npy_bytes, flags=mmap.MAP_SHARED | (_POPULATE if populate else 0),
                       prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    # The ndarray keeps the mapping alive (its base); it is read-only
    # because the mapping is.
    return np.ndarray(shape, dtype, buffer=mm, offset=response.data_offset)


def copy_from_file(response, out=None):
    """The tensor as a new (or the given) writeable ndarray: one copy."""
    view = map_file(response, populate=True)
    if out is None:
        out = np.empty(view.shape, view.dtype)
    np.copyto(out, view, casting="no")
    return out


def write_into_file(response, array):
    """Copies `array` (C-contiguous, little-endian) into an allocated file's
    payload. Raises OSError."""
    if response.info.nbytes == 0:
        return
    fd = _open(response.path, writable=True)
    try:
        mm = mmap.mmap(fd, response.npy_bytes, flags=mmap.MAP_SHARED | _POPULATE,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    try:
        dst = np.ndarray(array.shape, array.dtype, buffer=mm, offset=response.data_offset)
        np.copyto(dst, array, casting="no")
        del dst
    finally:
        mm.close()
