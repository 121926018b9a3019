#!/usr/bin/python3
"""Writes .npy reference files with numpy itself for the codec tests.

usage: make_npy_cases.py OUTDIR
Writes OUTDIR/valid_*.npy, OUTDIR/invalid_*.npy and OUTDIR/manifest.json:
  {"valid": [{"file", "descr", "shape", "fortran_order", "version"}],
   "invalid": [{"file", "error"}]}   # "error": a substring of the message
"""
import io
import json
import os
import sys

import numpy as np
from numpy.lib import format as npformat

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32",
          "int64", "uint64", "float16", "float32", "float64", "complex64",
          "complex128"]
SHAPES = [(), (0,), (1,), (3, 4, 5), (2, 0, 3), (7,), (1,) * 31 + (2,),
          (100000, 1)]


def sample(dtype, shape, rng):
    n = int(np.prod(shape, dtype=np.int64))
    raw = rng.integers(0, 256, size=n * np.dtype(dtype).itemsize, dtype=np.uint8)
    arr = raw.view(dtype).reshape(shape)
    if dtype == "bool":
        arr = (raw.reshape(shape) & 1).astype(bool)
    return arr


def header_bytes(dict_text, version=(1, 0)):
    return npformat._wrap_header(dict_text, version)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)
    valid, invalid = [], []

    def add_valid(name, arr, version=None):
        path = os.path.join(out, name)
        with open(path, "wb") as f:
            if version is None:
                np.save(f, arr)
            else:
                npformat.write_array(f, arr, version=version)
        with open(path, "rb") as f:
            ver = tuple(f.read(8)[6:8])
        valid.append({"file": name, "descr": npformat.dtype_to_descr(arr.dtype),
                      "shape": list(arr.shape),
                      "fortran_order": bool(arr.flags.f_contiguous and not arr.flags.c_contiguous),
                      "version": list(ver)})

    for dtype in DTYPES:
        for i, shape in enumerate(SHAPES):
            add_valid(f"valid_{dtype}_{i}.npy", sample(dtype, shape, rng))
    a = sample("float32", (3, 4), rng)
    add_valid("valid_v2.npy", a, version=(2, 0))
    add_valid("valid_v3.npy", a, version=(3, 0))
    add_valid("valid_fortran.npy", np.asfortranarray(sample("int16", (3, 4, 5), rng)))
    # A non-contiguous source: numpy.save writes it in C order.
    with open(os.path.join(out, "noncontig_int32.npy"), "wb") as f:
        np.save(f, np.arange(60, dtype="<i4").reshape(3, 4, 5).transpose(2, 0, 1))
    add_valid("valid_big_dims.npy", np.empty((0, 9223372036854775807 // 8), "<f8"))

    def add_invalid(name, data, error):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        invalid.append({"file": name, "error": error})

    good = io.BytesIO()
    np.save(good, np.arange(12, dtype="<f4").reshape(3, 4))
    good = good.getvalue()
    add_invalid("invalid_magic.npy", b"PK\x03\x04" + good[4:], "bad magic")
    add_invalid("invalid_version.npy", good[:6] + b"\x04\x00" + good[8:], "unsupported format version 4.0")
    add_invalid("invalid_truncated_preamble.npy", good[:9], "truncated")
    add_invalid("invalid_truncated_header.npy", good[:40], "truncated")
    # Header length field claims more than the header holds.
    lie = bytearray(good[:128])
    lie[8:10] = (200).to_bytes(2, "little")
    add_invalid("invalid_length_lies.npy", bytes(lie[:128]), "truncated")
    lie2 = bytearray(good[:128])
    lie2[8:10] = (40).to_bytes(2, "little")
    add_invalid("invalid_length_short.npy", bytes(lie2[:50]), "does not end with")
    cases = {
        "invalid_shape_text.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 'x'), }", "shape dimension 1 is not an integer"),
        "invalid_shape_float.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (3.5,), }", "shape dimension 0 is not an integer"),
        "invalid_shape_list.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4], }", "'shape' must be a tuple"),
        "invalid_shape_int.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", "not a tuple"),
        "invalid_negative.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }", "dimension 1 is negative"),
        "invalid_overflow_dim.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "overflows 64 bits"),
        "invalid_overflow_size.npy": ("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", "shape overflows"),
        "invalid_descr_unicode.npy": ("{'descr': '<U10', 'fortran_order': False, 'shape': (3,), }", "unsupported dtype descr '<U10'"),
        "invalid_descr_object.npy": ("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", "unsupported dtype descr '|O'"),
        "invalid_descr_structured.npy": ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", "structured dtypes"),
        "invalid_missing_shape.npy": ("{'descr': '<f4', 'fortran_order': False, }", "missing key 'shape'"),
        "invalid_extra_key.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1, }", "unexpected key 'x'"),
        "invalid_duplicate_key.npy": ("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", "duplicate key 'descr'"),
        "invalid_fortran_value.npy": ("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", "'fortran_order' must be True or False"),
        "invalid_ndim.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 33 + "), }", "ndim exceeds 32"),
        "invalid_trailing_text.npy": ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } x", "unexpected text after the dict"),
        "invalid_not_dict.npy": ("['descr', '<f4']", "expected '{'"),
    }
    for name, (text, error) in cases.items():
        add_invalid(name, header_bytes(text), error)
    # A real numpy file of a big-endian array.
    be = io.BytesIO()
    np.save(be, np.arange(3, dtype=">f4"))
    add_invalid("invalid_big_endian.npy", be.getvalue(), "big-endian descr '>f4'")
    # A header over 64 KiB (valid in format 2.0, refused by the size limit).
    huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + " " * 70000
    add_invalid("invalid_huge_header.npy", header_bytes(huge, (2, 0)), "exceeds the limit of 65536 bytes")

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"valid": valid, "invalid": invalid}, f, indent=1)


if __name__ == "__main__":
    main()
