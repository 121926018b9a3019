#include "server/store/shm_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "server/testing/temp_dir.h"

namespace npystream {
namespace {

namespace fs = std::filesystem;

std::string Header64() {
  std::string h(128, ' ');
  h.back() = '\n';
  return h;
}

class ShmDirTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(root_.empty()); }
  testing::TempDir dir_{"/dev/shm", "npystream_shm_dir_test"};
  const std::string root_ = dir_.path();
};

TEST_F(ShmDirTest, FileIsTheHeaderThenThePayloadAndGoesAwayWithItsOwner) {
  auto dir = ShmDir::Create({root_ + "/tensors", ""});
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_TRUE((*dir)->on_memory());
  auto file = (*dir)->CreateFile(Header64(), 1000, "x");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->data_offset(), 128u);
  EXPECT_EQ((*file)->size(), 1128u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*file)->payload()) % 64, 0u);
  std::memset((*file)->payload(), 7, 1000);
  std::ifstream in((*file)->path(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(bytes, Header64() + std::string(1000, '\7'));
  struct stat st {};
  ASSERT_EQ(stat((*file)->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ((*dir)->bytes(), 1128);
  const std::string path = (*file)->path();
  file->reset();
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ((*dir)->bytes(), 0);
}

TEST_F(ShmDirTest, UnlinkKeepsTheMappingValid) {
  auto dir = ShmDir::Create({root_, ""});
  ASSERT_TRUE(dir.ok());
  auto file = (*dir)->CreateFile(Header64(), 64, "y");
  ASSERT_TRUE(file.ok());
  std::memset((*file)->payload(), 3, 64);
  (*file)->Unlink();
  EXPECT_FALSE(fs::exists((*file)->path()));
  EXPECT_EQ((*file)->payload()[63], 3);
  (*file)->Unlink();  // idempotent
}

TEST_F(ShmDirTest, MarkerIdentifiesTheFolder) {
  auto dir = ShmDir::Create({root_, ""});
  ASSERT_TRUE(dir.ok());
  struct stat st {};
  ASSERT_EQ(stat((*dir)->marker_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_dev, (*dir)->marker_device());
  EXPECT_EQ(st.st_ino, (*dir)->marker_inode());
  const std::string marker = (*dir)->marker_path();
  dir->reset();
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(ShmDirTest, StaleFilesOfDeadDaemonsAreRemovedLiveOnesKept) {
  // A dead daemon: a marker nobody holds locked, and its files.
  const std::string dead = "0123456789abcdef";
  std::ofstream(root_ + "/.npystream-" + dead + ".lock") << "";
  std::ofstream(root_ + "/" + dead + "-0-x.npy") << "stale";
  std::ofstream(root_ + "/" + dead + "-1-y.npy") << "stale";
  std::ofstream(root_ + "/unrelated.npy") << "user file";
  // A live daemon in the same folder keeps its files.
  auto live = ShmDir::Create({root_, ""});
  ASSERT_TRUE(live.ok());
  EXPECT_EQ((*live)->stale_removed(), 2);
  auto kept = (*live)->CreateFile(Header64(), 8, "kept");
  ASSERT_TRUE(kept.ok());
  auto second = ShmDir::Create({root_, ""});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->stale_removed(), 0);
  EXPECT_TRUE(fs::exists((*kept)->path()));
  EXPECT_TRUE(fs::exists(root_ + "/unrelated.npy"));
  EXPECT_FALSE(fs::exists(root_ + "/.npystream-" + dead + ".lock"));
}

TEST_F(ShmDirTest, SymlinkedFolderIsRefused) {
  fs::create_directory(root_ + "/real");
  fs::create_directory_symlink(root_ + "/real", root_ + "/link");
  auto dir = ShmDir::Create({root_ + "/link", ""});
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dir.status().message().find("--shm-dir"), std::string::npos);
}

TEST_F(ShmDirTest, UnknownGroupNamesTheFlag) {
  auto dir = ShmDir::Create({root_, "no-such-group-npystream"});
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("--shm-group"), std::string::npos);
}

TEST_F(ShmDirTest, GroupIsSetOnFiles) {
  if (geteuid() != 0) GTEST_SKIP() << "setting another group needs root";
  auto dir = ShmDir::Create({root_, "12345"});
  ASSERT_TRUE(dir.ok()) << dir.status();
  auto file = (*dir)->CreateFile(Header64(), 8, "g");
  ASSERT_TRUE(file.ok()) << file.status();
  struct stat st {};
  ASSERT_EQ(stat((*file)->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 12345u);
}

}  // namespace
}  // namespace npystream
