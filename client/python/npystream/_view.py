"""Views (npystream.v1.TensorView): the keywords index, dtype and pool of
fetch, fetch_to and subscribe turned into the wire's text fields."""
import numbers
from typing import Any, Optional, Tuple

import numpy as np

from ._errors import InvalidArgumentError
from ._types import Index

#: (index text, dtype descr, pool) as the wire carries them.
ViewFields = Tuple[str, str, int]


def _index_item(item: Any) -> str:
    if item is Ellipsis:
        return "..."
    if isinstance(item, slice):
        parts = [item.start, item.stop, item.step]
        for p in parts:
            if p is not None and not isinstance(p, numbers.Integral):
                raise InvalidArgumentError(
                    f"INVALID_ARGUMENT: view index: slice bounds must be integers, not {p!r}")
        text = ":".join("" if p is None else str(int(p)) for p in parts[:2])
        return text if item.step is None else f"{text}:{int(item.step)}"
    if isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_)):
        return str(int(item))
    raise InvalidArgumentError(
        f"INVALID_ARGUMENT: view index: {item!r} is not basic indexing (integers, slices and "
        "one ... only)")


def index_text(index: Index) -> str:
    """The index as the text the daemon parses: a string is sent as it is;
    np.s_[...] expressions (an int, slice, Ellipsis or a tuple of them) are
    written out."""
    if index is None:
        return ""
    if isinstance(index, str):
        return index
    items = index if isinstance(index, tuple) else (index,)
    text = ", ".join(_index_item(i) for i in items)
    return text + "," if len(items) == 1 and isinstance(index, tuple) else text


def view_fields(index: Index = None, dtype: Any = None, pool: Optional[int] = None) -> ViewFields:
    """(index, descr, pool) for the wire; all empty for the whole tensor."""
    try:
        descr = "" if dtype is None else np.dtype(dtype).str
    except TypeError:
        raise InvalidArgumentError(
            f"INVALID_ARGUMENT: view dtype: {dtype!r} is not a numpy dtype") from None
    if pool is not None and (not isinstance(pool, numbers.Integral) or pool < 0):
        raise InvalidArgumentError(f"INVALID_ARGUMENT: view pool: {pool!r} is not a "
                                   "non-negative integer")
    return index_text(index), descr, int(pool or 0)


def is_whole(fields: ViewFields) -> bool:
    index, descr, pool = fields
    return not index and not descr and pool <= 1
