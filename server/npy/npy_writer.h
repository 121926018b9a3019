// Writes .npy headers byte-identical to numpy.save (NumPy 1.24).
#ifndef NPYSTREAM_SERVER_NPY_NPY_WRITER_H_
#define NPYSTREAM_SERVER_NPY_NPY_WRITER_H_

#include <string>

#include "server/npy/dtype.h"

namespace npystream::npy {

// The bytes numpy.save writes before the payload of a C-order array with
// `meta` (meta.fortran_order is ignored): magic, version (1.0, or 2.0 when
// the header would not fit), header dict with numpy's growth-axis spaces,
// padding to a multiple of 64 bytes and a trailing '\n'. `meta` must be valid.
std::string WriteHeader(const ArrayMeta& meta);

}  // namespace npystream::npy

#endif  // NPYSTREAM_SERVER_NPY_NPY_WRITER_H_
