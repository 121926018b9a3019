#include "server/store/tmpfs_huge_pages.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/file_util.h"

namespace npystream {
namespace {

// The value of `huge=` among a mount's comma-separated super options.
TmpfsHugePages FromOption(absl::string_view value) {
  if (value == "within_size") return TmpfsHugePages::kWithinSize;
  if (value == "always") return TmpfsHugePages::kAlways;
  if (value == "advise") return TmpfsHugePages::kAdvise;
  return TmpfsHugePages::kNever;
}

// The bracketed choice of a /sys multiple-choice file: "always [never] deny".
absl::string_view Selected(absl::string_view text) {
  const size_t open = text.find('[');
  const size_t close = text.find(']', open);
  if (open == absl::string_view::npos || close == absl::string_view::npos) return "";
  return text.substr(open + 1, close - open - 1);
}

}  // namespace

absl::string_view TmpfsHugePagesName(TmpfsHugePages policy) {
  switch (policy) {
    case TmpfsHugePages::kWithinSize:
      return "within_size";
    case TmpfsHugePages::kAlways:
      return "always";
    case TmpfsHugePages::kAdvise:
      return "advise";
    case TmpfsHugePages::kNever:
      break;
  }
  return "never";
}

TmpfsHugePages ParseTmpfsHugePages(absl::string_view mountinfo, uint32_t major, uint32_t minor,
                                   absl::string_view shmem_enabled) {
  const std::string device = std::to_string(major) + ":" + std::to_string(minor);
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 10 || fields[2] != device) continue;
    size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash + 3 >= fields.size() || fields[dash + 1] != "tmpfs") continue;
    const absl::string_view forced = Selected(shmem_enabled);
    if (forced == "deny") return TmpfsHugePages::kNever;
    if (forced == "force") return TmpfsHugePages::kAlways;
    for (absl::string_view option : absl::StrSplit(fields[dash + 3], ',')) {
      if (absl::ConsumePrefix(&option, "huge=")) return FromOption(option);
    }
    return TmpfsHugePages::kNever;
  }
  return TmpfsHugePages::kNever;
}

TmpfsHugePages TmpfsHugePagesOf(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return TmpfsHugePages::kNever;
  auto mountinfo = ReadFileToString("/proc/self/mountinfo");
  if (!mountinfo.ok()) return TmpfsHugePages::kNever;
  auto shmem_enabled = ReadFileToString("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  return ParseTmpfsHugePages(*mountinfo, major(st.st_dev), minor(st.st_dev),
                             shmem_enabled.ok() ? *shmem_enabled : std::string());
}

}  // namespace npystream
