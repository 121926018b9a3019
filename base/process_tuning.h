// Process-wide settings for programs that stream large gRPC messages. Call
// TuneProcessForStreaming() first thing in main(); they are process-wide
// choices, so libraries never make them.
#ifndef NPYSTREAM_BASE_PROCESS_TUNING_H_
#define NPYSTREAM_BASE_PROCESS_TUNING_H_

#include <cstdint>
#include <string>

namespace npystream {

// Both below. Returns what it did, for the startup log.
std::string TuneProcessForStreaming();

// glibc's malloc gives memory back to the kernel as soon as 128 KiB lie free
// at the top of a heap, so the buffers gRPC allocates for every received
// chunk are page-faulted in again and again (measured: four concurrent
// 64 MiB fetches at 0.4 GB/s instead of 1.9; Put at half speed). Keeps up to
// 64 MiB free per heap and serves blocks under 32 MiB from the heaps. Leaves
// glibc alone when MALLOC_TRIM_THRESHOLD_ or MALLOC_MMAP_THRESHOLD_ is set.
std::string TuneMallocForStreaming();

// The other side of TuneMallocForStreaming: hands the free memory glibc's
// heaps keep (up to 64 MiB each, one heap per busy thread) back to the
// kernel. For a server to call when idle; takes milliseconds. Returns the
// bytes of resident memory it freed, as far as /proc/self/statm tells.
int64_t ReleaseFreeMemory();

// Debian's abseil is built without NDEBUG, so every absl::Mutex (gRPC's
// locks included) keeps a lock-order graph and aborts the process on a
// cycle: measured 43 ns per uncontended lock instead of 13, on the path of
// every call. Turns that bookkeeping off.
std::string IgnoreMutexDeadlockChecks();

}  // namespace npystream

#endif  // NPYSTREAM_BASE_PROCESS_TUNING_H_
