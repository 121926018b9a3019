// Malloc tuning for processes that stream large gRPC messages.
#ifndef NPYSTREAM_SERVER_COMMON_MALLOC_TUNING_H_
#define NPYSTREAM_SERVER_COMMON_MALLOC_TUNING_H_

#include <string>

namespace npystream {

// glibc's malloc gives memory back to the kernel as soon as 128 KiB lie free
// at the top of a heap, so the buffers gRPC allocates for every received
// chunk are page-faulted in again and again (measured: four concurrent
// 64 MiB fetches at 0.4 GB/s instead of 1.9; Put at half speed). Keeps up to
// 64 MiB free per heap and serves blocks under 32 MiB from the heaps. Call
// first thing in main(); a process-wide choice, so libraries never call it.
// Leaves glibc alone when MALLOC_TRIM_THRESHOLD_ or MALLOC_MMAP_THRESHOLD_
// is set. Returns what it did, for the startup log.
std::string TuneMallocForStreaming();

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_MALLOC_TUNING_H_
