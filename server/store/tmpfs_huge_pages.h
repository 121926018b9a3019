// Whether a tmpfs backs its files with 2 MiB pages. A same-host Put writes a
// whole tensor into freshly allocated tmpfs pages; with 4 KiB pages the kernel
// allocates and writes one page at a time (~0.3x memcpy here), with 2 MiB
// pages (`mount -o huge=within_size`) near memcpy speed.
#ifndef NPYSTREAM_SERVER_STORE_TMPFS_HUGE_PAGES_H_
#define NPYSTREAM_SERVER_STORE_TMPFS_HUGE_PAGES_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace npystream {

// The mount's `huge=` option (tmpfs(5)) as the kernel applies it.
enum class TmpfsHugePages {
  kNever,       // 4 KiB pages only (tmpfs's default)
  kWithinSize,  // 2 MiB pages where a whole one fits in the file
  kAlways,      // 2 MiB pages always: a small file takes 2 MiB
  kAdvise,      // only for mappings that madvise(MADV_HUGEPAGE)
};

absl::string_view TmpfsHugePagesName(TmpfsHugePages policy);

// The policy of the tmpfs mounted from device `major:minor`, from the text of
// /proc/self/mountinfo and of /sys/kernel/mm/transparent_hugepage/shmem_enabled
// (whose "deny" and "force" override every mount; empty: absent). kNever when
// the device is not a tmpfs in `mountinfo`. Pure.
TmpfsHugePages ParseTmpfsHugePages(absl::string_view mountinfo, uint32_t major, uint32_t minor,
                                   absl::string_view shmem_enabled);

// The policy of the filesystem holding the open file or folder `fd`, read from
// this process's /proc and /sys; kNever when they cannot be read.
TmpfsHugePages TmpfsHugePagesOf(int fd);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_TMPFS_HUGE_PAGES_H_
