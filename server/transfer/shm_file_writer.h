// The writer of a Put whose tensor is stored as a file in the shm folder:
// payload bytes go in with pwrite(2), which fills the file's allocated pages
// in place, instead of through the daemon's mapping of it, which takes a page
// fault per 4 KiB page (measured 10x slower on a VM where faults are dear).
#ifndef NPYSTREAM_SERVER_TRANSFER_SHM_FILE_WRITER_H_
#define NPYSTREAM_SERVER_TRANSFER_SHM_FILE_WRITER_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "server/store/shm_dir.h"
#include "server/transfer/transfer.h"

namespace npystream {

// Writes `nbytes` of payload into `file`, in order, each Write done before it
// returns (like the CPU backend's writer). Errors: those of
// ShmFile::OpenForWrite; later OUT_OF_RANGE past `nbytes` and the first
// failed write (INTERNAL, naming the file), kept and reported to
// WhenWritable and Flush. Not thread-safe.
absl::StatusOr<std::unique_ptr<PayloadWriter>> NewShmFileWriter(std::shared_ptr<ShmFile> file,
                                                                uint64_t nbytes);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_SHM_FILE_WRITER_H_
