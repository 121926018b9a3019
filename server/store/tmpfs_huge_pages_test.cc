#include "server/store/tmpfs_huge_pages.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "base/file_util.h"
#include "gtest/gtest.h"
#include "server/testing/temp_dir.h"

namespace npystream {
namespace {

// Lines as this VM's /proc/self/mountinfo has them, plus optional fields.
constexpr char kMountInfo[] =
    "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=123k,huge=always\n"
    "25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k\n"
    "42 27 0:39 / /mnt/huge rw,relatime shared:5 master:1 - tmpfs tmpfs rw,size=4g,huge=always\n"
    "43 27 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw,size=4g,huge=within_size,mode=1777\n"
    "44 27 0:41 / /mnt/adv rw - tmpfs tmpfs rw,huge=advise\n"
    "45 27 8:1 / / rw - ext4 /dev/vda rw,huge=within_size\n";
constexpr char kNever[] = "always within_size advise [never] deny force\n";

TEST(TmpfsHugePagesTest, ReadsTheHugeOptionOfTheMountWithThatDevice) {
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 23, kNever), TmpfsHugePages::kNever);
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 39, kNever), TmpfsHugePages::kAlways);
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 40, kNever), TmpfsHugePages::kWithinSize);
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 41, kNever), TmpfsHugePages::kAdvise);
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 40, ""), TmpfsHugePages::kWithinSize);
}

TEST(TmpfsHugePagesTest, OnlyTmpfsCountsAndAnUnknownDeviceIsNever) {
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 6, kNever), TmpfsHugePages::kNever);  // devtmpfs
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 8, 1, kNever), TmpfsHugePages::kNever);  // ext4
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 99, kNever), TmpfsHugePages::kNever);
  EXPECT_EQ(ParseTmpfsHugePages("garbage\n\n1 2 0:40 -\n", 0, 40, kNever), TmpfsHugePages::kNever);
}

TEST(TmpfsHugePagesTest, ShmemEnabledDenyAndForceOverrideEveryMount) {
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 40, "always within_size advise never [deny] force"),
            TmpfsHugePages::kNever);
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 0, 23, "always within_size advise never deny [force]"),
            TmpfsHugePages::kAlways);
  // A forced policy still applies to tmpfs only.
  EXPECT_EQ(ParseTmpfsHugePages(kMountInfo, 8, 1, "always within_size advise never deny [force]"),
            TmpfsHugePages::kNever);
}

TEST(TmpfsHugePagesTest, NamesAreTheMountOptionValues) {
  EXPECT_EQ(TmpfsHugePagesName(TmpfsHugePages::kNever), "never");
  EXPECT_EQ(TmpfsHugePagesName(TmpfsHugePages::kWithinSize), "within_size");
  EXPECT_EQ(TmpfsHugePagesName(TmpfsHugePages::kAlways), "always");
  EXPECT_EQ(TmpfsHugePagesName(TmpfsHugePages::kAdvise), "advise");
}

// The real kernel: a tmpfs this test mounts with huge=within_size is seen as
// such through an open folder, where only root may mount.
TEST(TmpfsHugePagesTest, SeesTheOptionOfARealMount) {
  testing::TempDir temp("/tmp", "npystream_tmpfs_huge_pages_test");
  const std::string& dir = temp.path();
  ASSERT_FALSE(dir.empty());
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=8m,huge=within_size") != 0) {
    const int err = errno;
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(err) << "): needs root";
  }
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const TmpfsHugePages seen = TmpfsHugePagesOf(fd);
  close(fd);
  ASSERT_EQ(umount2(dir.c_str(), MNT_DETACH), 0);
  auto forced = ReadFileToString("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  if (forced.ok() && absl::StrContains(*forced, "[deny]")) {
    EXPECT_EQ(seen, TmpfsHugePages::kNever);
  } else if (forced.ok() && absl::StrContains(*forced, "[force]")) {
    EXPECT_EQ(seen, TmpfsHugePages::kAlways);
  } else {
    EXPECT_EQ(seen, TmpfsHugePages::kWithinSize);
  }
}

}  // namespace
}  // namespace npystream
