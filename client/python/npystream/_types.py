"""The type aliases of the public API (for annotations; nothing at run time
depends on them)."""
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple, Union

import numpy.typing as npt

from ._info import TensorInfo

if TYPE_CHECKING:
    from types import EllipsisType
else:
    EllipsisType = type(Ellipsis)  # (types.EllipsisType: Python 3.10)

#: callable(done_bytes, total_bytes), called as a transfer advances.
Progress = Optional[Callable[[int, int], None]]
#: An ndarray of any dtype.
Array = npt.NDArray[Any]
#: A view's index: numpy basic indexing as text ("0, 2:8") or as np.s_[...]
#: (an int, slice, Ellipsis or a tuple of them); None for the whole tensor.
Index = Union[str, int, slice, EllipsisType, Tuple[Any, ...], None]
#: One Infer input: an array sent inline, or a resident tensor's handle.
InferInput = Union[npt.ArrayLike, str, TensorInfo]
#: Subscribe views: {layer: {"index": ..., "dtype": ..., "pool": ...}}.
Views = Optional[Mapping[str, Mapping[str, Any]]]
#: PEM bytes (or text) of a certificate or key.
Pem = Optional[Union[bytes, str]]

__all__ = ["Progress", "Array", "Index", "InferInput", "Views", "Pem"]
