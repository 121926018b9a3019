// ShmDir: the daemon's folder of tensor files on a memory filesystem
// (--shm-dir). Each file is a whole .npy file (header, then the payload at a
// 64-byte aligned offset) mapped into the daemon, so the mapping can be a
// tensor's storage and another process on the host can map the same bytes.
#ifndef NPYSTREAM_SERVER_STORE_SHM_DIR_H_
#define NPYSTREAM_SERVER_STORE_SHM_DIR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/tmpfs_huge_pages.h"

namespace npystream {

class ShmDir;

// One mapped file. Thread-safe. Destroying it unmaps the file and unlinks it
// (if Unlink has not already); mappings other processes hold stay valid.
class ShmFile {
 public:
  ~ShmFile();
  ShmFile(const ShmFile&) = delete;
  ShmFile& operator=(const ShmFile&) = delete;

  // The whole file, mapped read-write: header at 0, payload at data_offset().
  char* base() const { return base_; }
  char* payload() const { return base_ + data_offset_; }
  uint64_t size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }
  // Removes the name; idempotent. The memory returns once every mapping ends.
  void Unlink();
  // A new descriptor of the file, open for writing (the caller closes it):
  // pwrite(2) fills the allocated pages in place, where writing through the
  // mapping takes a page fault per 4 KiB page. FAILED_PRECONDITION once
  // unlinked.
  absl::StatusOr<int> OpenForWrite() const;

 private:
  friend class ShmDir;
  struct Folder;
  ShmFile(std::shared_ptr<Folder> folder, std::string name, char* base, uint64_t size,
          uint64_t data_offset);

  std::shared_ptr<Folder> folder_;
  std::string name_;
  std::string path_;
  char* base_;
  uint64_t size_;
  uint64_t data_offset_;
  std::atomic<bool> unlinked_{false};
};

class ShmDir {
 public:
  struct Options {
    std::string path;   // created (mode 0750) when missing; never a symlink
    std::string group;  // files' group (a name or number); empty: the daemon's
  };

  // Opens (or makes) the folder, takes this daemon's marker file (held locked
  // while the daemon lives) and deletes the files of daemons that are gone.
  // INVALID_ARGUMENT naming --shm-dir/--shm-group when unusable.
  static absl::StatusOr<std::shared_ptr<ShmDir>> Create(const Options& options);
  ~ShmDir();

  // A new file of `header` followed by room for `payload_bytes` (allocated
  // now, so a full filesystem is RESOURCE_EXHAUSTED here, never a fault
  // later), mode 0640. `header.size()` must be a multiple of 64. `label` (a
  // handle) only makes the name readable. Thread-safe.
  absl::StatusOr<std::shared_ptr<ShmFile>> CreateFile(absl::string_view header,
                                                      uint64_t payload_bytes,
                                                      absl::string_view label);

  const std::string& path() const;
  // The marker file clients compare (device and inode) to decide whether they
  // see this folder; see npystream.v1.ShmResponse.
  const std::string& marker_path() const;
  uint64_t marker_device() const;
  uint64_t marker_inode() const;
  // Bytes of files that exist (created, not yet freed). Thread-safe.
  int64_t bytes() const;
  // Files of dead daemons removed by Create.
  int stale_removed() const { return stale_removed_; }
  // Whether the folder is on tmpfs (memory); false is allowed but slower.
  bool on_memory() const { return on_memory_; }
  // Whether the tmpfs backs files with 2 MiB pages (fast same-host Puts).
  TmpfsHugePages huge_pages() const { return huge_pages_; }

 private:
  explicit ShmDir(std::shared_ptr<ShmFile::Folder> folder) : folder_(std::move(folder)) {}
  absl::Status TakeMarker();
  void RemoveStale();

  std::shared_ptr<ShmFile::Folder> folder_;
  int marker_fd_ = -1;
  std::string marker_path_;
  uint64_t marker_device_ = 0;
  uint64_t marker_inode_ = 0;
  int stale_removed_ = 0;
  bool on_memory_ = false;
  TmpfsHugePages huge_pages_ = TmpfsHugePages::kNever;
  std::atomic<uint64_t> next_{0};
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_SHM_DIR_H_
