#include "server/transfer/shm_file_writer.h"

#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "server/testing/temp_dir.h"

namespace npystream {
namespace {

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class ShmFileWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    auto shm = ShmDir::Create({dir_.path() + "/tensors", ""});
    ASSERT_TRUE(shm.ok()) << shm.status();
    shm_ = *shm;
  }
  testing::TempDir dir_{"/dev/shm", "npystream_shm_file_writer_test"};
  std::shared_ptr<ShmDir> shm_;
  const std::string header_ = std::string(63, ' ') + "\n";
};

// Chunks of odd sizes land one after another behind the header, and the
// daemon's own mapping sees what was written through the descriptor.
TEST_F(ShmFileWriterTest, ChunksLandInOrderBehindTheHeader) {
  auto file = shm_->CreateFile(header_, 10007, "t");
  ASSERT_TRUE(file.ok()) << file.status();
  auto writer = NewShmFileWriter(*file, 10007);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::string payload(10007, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31 + i / 251);
  for (size_t at = 0; at < payload.size(); at += 4099) {
    (*writer)->Write(
        HostChunk{payload.data() + at, std::min<size_t>(4099, payload.size() - at), nullptr});
  }
  absl::Status flushed = absl::UnknownError("not called");
  (*writer)->Flush([&](absl::Status s) { flushed = s; });
  EXPECT_TRUE(flushed.ok()) << flushed;
  EXPECT_EQ(FileBytes((*file)->path()), header_ + payload);
  EXPECT_EQ(std::string((*file)->payload(), payload.size()), payload);
}

TEST_F(ShmFileWriterTest, OverrunAndARemovedFileAreErrors) {
  auto file = shm_->CreateFile(header_, 8, "t");
  ASSERT_TRUE(file.ok());
  auto writer = NewShmFileWriter(*file, 8);
  ASSERT_TRUE(writer.ok());
  (*writer)->Write(HostChunk{"abcdefghij", 10, nullptr});
  absl::Status ready;
  (*writer)->WhenWritable([&](absl::Status s) { ready = s; });
  EXPECT_EQ(ready.code(), absl::StatusCode::kOutOfRange) << ready;
  EXPECT_EQ(FileBytes((*file)->path()), header_ + std::string(8, '\0'));  // nothing written
  (*file)->Unlink();
  auto gone = NewShmFileWriter(*file, 8);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kFailedPrecondition) << gone.status();
}

}  // namespace
}  // namespace npystream
