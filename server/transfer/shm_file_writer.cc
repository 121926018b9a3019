#include "server/transfer/shm_file_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace npystream {
namespace {

class ShmFileWriter : public PayloadWriter {
 public:
  ShmFileWriter(std::shared_ptr<ShmFile> file, int fd, uint64_t nbytes)
      : file_(std::move(file)), fd_(fd), nbytes_(nbytes) {}
  ~ShmFileWriter() override { close(fd_); }

  void Write(HostChunk chunk) override {
    if (!status_.ok()) return;
    status_ = CheckWriteFits(chunk.size, written_, nbytes_);
    if (!status_.ok()) return;
    const char* data = chunk.data;
    size_t left = chunk.size;
    while (left > 0) {
      const ssize_t n =
          pwrite(fd_, data, left, static_cast<off_t>(file_->data_offset() + written_));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        status_ = absl::InternalError(absl::StrCat("writing ", file_->path(), ": ",
                                                   n < 0 ? std::strerror(errno) : "no progress"));
        return;
      }
      data += n;
      left -= static_cast<size_t>(n);
      written_ += static_cast<uint64_t>(n);
    }
  }
  void WhenWritable(std::function<void(absl::Status)> ready) override { ready(status_); }
  void Flush(std::function<void(absl::Status)> done) override { done(status_); }

 private:
  const std::shared_ptr<ShmFile> file_;
  const int fd_;
  const uint64_t nbytes_;
  uint64_t written_ = 0;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PayloadWriter>> NewShmFileWriter(std::shared_ptr<ShmFile> file,
                                                                uint64_t nbytes) {
  ASSIGN_OR_RETURN(const int fd, file->OpenForWrite());
  return std::unique_ptr<PayloadWriter>(new ShmFileWriter(std::move(file), fd, nbytes));
}

}  // namespace npystream
