#include "server/store/shm_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace npystream {

// What files and the folder share; outlives the ShmDir while files live.
struct ShmFile::Folder {
  ~Folder() {
    if (fd >= 0) close(fd);
  }
  int fd = -1;
  std::string path;
  std::string owner;  // this daemon's id: its files are "<owner>-*.npy"
  gid_t gid = static_cast<gid_t>(-1);
  std::atomic<int64_t> bytes{0};
};

namespace {

constexpr char kMarkerPrefix[] = ".npystream-";
constexpr char kMarkerSuffix[] = ".lock";
constexpr mode_t kFileMode = 0640;

std::string Errno(absl::string_view what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

absl::Status Unusable(absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--shm-dir ", path, ": ", why));
}

// "<owner>" of "<owner>-<n>-<label>.npy", or "" for names not made by a daemon.
std::string OwnerOfFile(absl::string_view name) {
  if (!absl::EndsWith(name, ".npy")) return "";
  const size_t dash = name.find('-');
  if (dash != 16) return "";
  return std::string(name.substr(0, dash));
}

// "<owner>" of ".npystream-<owner>.lock", or "".
std::string OwnerOfMarker(absl::string_view name) {
  if (!absl::StartsWith(name, kMarkerPrefix) || !absl::EndsWith(name, kMarkerSuffix)) return "";
  name.remove_prefix(sizeof(kMarkerPrefix) - 1);
  name.remove_suffix(sizeof(kMarkerSuffix) - 1);
  return name.size() == 16 ? std::string(name) : "";
}

absl::StatusOr<gid_t> ResolveGroup(const std::string& group) {
  if (group.empty()) return static_cast<gid_t>(-1);
  uint32_t number = 0;
  if (absl::SimpleAtoi(group, &number)) return static_cast<gid_t>(number);
  struct group entry {};
  struct group* found = nullptr;
  std::vector<char> buffer(16384);
  if (getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--shm-group ", group, ": no such group"));
  }
  return found->gr_gid;
}

}  // namespace

ShmFile::ShmFile(std::shared_ptr<Folder> folder, std::string name, char* base, uint64_t size,
                 uint64_t data_offset)
    : folder_(std::move(folder)),
      name_(std::move(name)),
      path_(absl::StrCat(folder_->path, "/", name_)),
      base_(base),
      size_(size),
      data_offset_(data_offset) {
  folder_->bytes.fetch_add(static_cast<int64_t>(size_));
}

ShmFile::~ShmFile() {
  munmap(base_, size_);
  Unlink();
  folder_->bytes.fetch_sub(static_cast<int64_t>(size_));
}

void ShmFile::Unlink() {
  if (unlinked_.exchange(true)) return;
  unlinkat(folder_->fd, name_.c_str(), 0);
}

absl::StatusOr<int> ShmFile::OpenForWrite() const {
  if (unlinked_.load()) {
    return absl::FailedPreconditionError(absl::StrCat("shm file ", path_, " was removed"));
  }
  const int fd = openat(folder_->fd, name_.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("opening ", path_, ": ", std::strerror(errno)));
  }
  return fd;
}

absl::StatusOr<std::shared_ptr<ShmDir>> ShmDir::Create(const Options& options) {
  if (options.path.empty()) return Unusable("\"\"", "empty path");
  auto folder = std::make_shared<ShmFile::Folder>();
  folder->path = options.path;
  while (folder->path.size() > 1 && folder->path.back() == '/') folder->path.pop_back();
  auto gid = ResolveGroup(options.group);
  if (!gid.ok()) return gid.status();
  folder->gid = *gid;
  if (mkdir(folder->path.c_str(), 0750) == 0) {
    if (folder->gid != static_cast<gid_t>(-1) &&
        chown(folder->path.c_str(), static_cast<uid_t>(-1), folder->gid) != 0) {
      return Unusable(folder->path, Errno("chown"));
    }
  } else if (errno != EEXIST) {
    return Unusable(folder->path, Errno("mkdir"));
  }
  // O_NOFOLLOW: a symlink planted at the path is refused, not followed.
  folder->fd = open(folder->path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (folder->fd < 0) return Unusable(folder->path, Errno("open"));
  std::mt19937_64 rng(std::random_device{}());
  folder->owner = absl::StrFormat("%016x", rng());

  std::shared_ptr<ShmDir> dir(new ShmDir(folder));
  struct statfs fs {};
  dir->on_memory_ = fstatfs(folder->fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
  if (dir->on_memory_) dir->huge_pages_ = TmpfsHugePagesOf(folder->fd);
  if (absl::Status s = dir->TakeMarker(); !s.ok()) return s;
  dir->RemoveStale();
  return dir;
}

ShmDir::~ShmDir() {
  if (marker_fd_ >= 0) {
    unlinkat(folder_->fd, marker_path_.substr(folder_->path.size() + 1).c_str(), 0);
    close(marker_fd_);
  }
}

absl::Status ShmDir::TakeMarker() {
  const std::string name = absl::StrCat(kMarkerPrefix, folder_->owner, kMarkerSuffix);
  marker_fd_ = openat(folder_->fd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      kFileMode);
  if (marker_fd_ < 0) return Unusable(folder_->path, Errno("creating the marker file"));
  // Held for the daemon's life: a later daemon that can lock it knows this
  // one is gone and its files are stale.
  if (flock(marker_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Unusable(folder_->path, Errno("locking the marker file"));
  }
  if (fchmod(marker_fd_, kFileMode) != 0 ||
      (folder_->gid != static_cast<gid_t>(-1) &&
       fchown(marker_fd_, static_cast<uid_t>(-1), folder_->gid) != 0)) {
    return Unusable(folder_->path, Errno("setting the marker file's mode"));
  }
  struct stat st {};
  if (fstat(marker_fd_, &st) != 0) return Unusable(folder_->path, Errno("fstat"));
  marker_path_ = absl::StrCat(folder_->path, "/", name);
  marker_device_ = st.st_dev;
  marker_inode_ = st.st_ino;
  return absl::OkStatus();
}

void ShmDir::RemoveStale() {
  // Files first, markers second: a daemon's marker exists before its files,
  // so one starting during the scan has no file in the first list.
  std::vector<std::string> files;
  std::vector<std::string> markers;
  const int fd = dup(folder_->fd);
  if (fd < 0) return;
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return;
  }
  while (struct dirent* e = readdir(d)) {
    if (!OwnerOfFile(e->d_name).empty()) files.push_back(e->d_name);
  }
  rewinddir(d);
  while (struct dirent* e = readdir(d)) {
    if (!OwnerOfMarker(e->d_name).empty()) markers.push_back(e->d_name);
  }
  closedir(d);
  std::set<std::string> live = {folder_->owner};
  for (const std::string& name : markers) {
    const std::string owner = OwnerOfMarker(name);
    if (owner == folder_->owner) continue;
    const int m = openat(folder_->fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (m < 0) continue;
    if (flock(m, LOCK_EX | LOCK_NB) == 0) {
      unlinkat(folder_->fd, name.c_str(), 0);  // its daemon is gone
    } else {
      live.insert(owner);
    }
    close(m);
  }
  for (const std::string& name : files) {
    if (live.count(OwnerOfFile(name)) > 0) continue;
    struct stat st {};
    if (fstatat(folder_->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        unlinkat(folder_->fd, name.c_str(), 0) == 0) {
      ++stale_removed_;
    }
  }
}

absl::StatusOr<std::shared_ptr<ShmFile>> ShmDir::CreateFile(absl::string_view header,
                                                            uint64_t payload_bytes,
                                                            absl::string_view label) {
  if (header.empty() || header.size() % 64 != 0) {
    return absl::InternalError("shm file header must be a non-empty multiple of 64 bytes");
  }
  const uint64_t size = header.size() + payload_bytes;
  const std::string name =
      absl::StrCat(folder_->owner, "-", next_.fetch_add(1), "-", label, ".npy");
  const int fd = openat(folder_->fd, name.c_str(),
                        O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kFileMode);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("creating ", path(), "/", name, ": ", std::strerror(errno)));
  }
  auto fail = [&](absl::Status status) {
    close(fd);
    unlinkat(folder_->fd, name.c_str(), 0);
    return status;
  };
  if (fchmod(fd, kFileMode) != 0 || (folder_->gid != static_cast<gid_t>(-1) &&
                                     fchown(fd, static_cast<uid_t>(-1), folder_->gid) != 0)) {
    return fail(absl::InternalError(Errno("setting the shm file's mode")));
  }
  // Allocates every page now: on a full tmpfs this fails cleanly, where
  // writing through a mapping of a sparse file would raise SIGBUS.
  if (const int err = posix_fallocate(fd, 0, static_cast<off_t>(size)); err != 0) {
    if (err == ENOSPC) {
      return fail(absl::ResourceExhaustedError(absl::StrCat(
          "--shm-dir ", path(), " is full: no room for a ", size, "-byte tensor file")));
    }
    return fail(absl::InternalError(
        absl::StrCat("allocating ", size, " bytes in ", path(), ": ", std::strerror(err))));
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    return fail(absl::ResourceExhaustedError(Errno("mapping the shm file")));
  }
  close(fd);
  std::memcpy(base, header.data(), header.size());
  return std::shared_ptr<ShmFile>(
      new ShmFile(folder_, name, static_cast<char*>(base), size, header.size()));
}

const std::string& ShmDir::path() const { return folder_->path; }
const std::string& ShmDir::marker_path() const { return marker_path_; }
uint64_t ShmDir::marker_device() const { return marker_device_; }
uint64_t ShmDir::marker_inode() const { return marker_inode_; }
int64_t ShmDir::bytes() const { return folder_->bytes.load(); }

}  // namespace npystream
