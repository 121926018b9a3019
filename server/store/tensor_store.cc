#include "server/store/tensor_store.h"

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/npy/npy_writer.h"
#include "server/store/device_plan.h"
#include "server/store/torch_dtype.h"

namespace npystream {

struct StoredTensor::Impl {
  at::Tensor tensor;
  std::shared_ptr<ShmFile> file;  // the tensor's storage, when it is a shm file
};

namespace {

constexpr size_t kMaxNameLength = 128;
constexpr char kNoShm[] =
    "this daemon has no --shm-dir; same-host Map and Allocate need one (e.g. --shm-dir "
    "/dev/shm/npystream)";

std::string DeviceName(const at::Tensor& t) {
  if (t.device().is_cpu()) return "cpu";
  return absl::StrCat(t.device().type() == c10::DeviceType::CUDA ? "cuda" : "other", ":",
                      static_cast<int>(t.device().index()));
}

// Put writes every byte of a fresh allocation; on VMs a 4 KiB page fault
// costs more than copying the page (measured: faults were ~40% of Put's CPU).
// Transparent huge pages cut the faults 512-fold where the kernel allows.
void AdviseHugePages(char* p, uint64_t n) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (n < 2 * kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

absl::Status TorchError(absl::string_view what, const std::exception& e) {
  std::string msg = e.what();
  if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
  return absl::InternalError(absl::StrCat(what, ": ", msg));
}

}  // namespace

StoredTensor::StoredTensor(TensorInfo info, std::unique_ptr<Impl> impl,
                           std::shared_ptr<StoreAccounts> accounts)
    : info_(std::move(info)), impl_(std::move(impl)), accounts_(std::move(accounts)) {
  npy_header_ = npy::WriteHeader(info_.meta);
  info_.npy_bytes = npy_header_.size() + info_.nbytes;
  data_ = impl_->tensor.data_ptr();
  if (impl_->tensor.device().is_cpu()) host_data_ = static_cast<const char*>(data_);
  accounts_->resident.fetch_add(1);
}

StoredTensor::~StoredTensor() {
  std::shared_ptr<ShmFile> copy;
  {
    absl::MutexLock lock(&shm_mu_);
    copy = std::move(shm_copy_);
  }
  if (copy != nullptr) {
    copy.reset();
    accounts_->budget.Release("cpu", info_.nbytes);
  }
  impl_.reset();  // free the memory before returning its budget
  accounts_->budget.Release(info_.device, info_.nbytes);
  accounts_->resident.fetch_sub(1);
}

const at::Tensor& StoredTensor::tensor() const { return impl_->tensor; }

std::shared_ptr<ShmFile> StoredTensor::shm_file() const {
  if (impl_->file != nullptr) return impl_->file;
  absl::MutexLock lock(&shm_mu_);
  return shm_copy_;
}

void StoredTensor::UnlinkShm() const {
  if (impl_->file != nullptr) impl_->file->Unlink();
  absl::MutexLock lock(&shm_mu_);
  unlinked_ = true;
  if (shm_copy_ != nullptr) shm_copy_->Unlink();
}

TensorWriter::TensorWriter(TensorStore* store, TensorInfo info,
                           std::unique_ptr<StoredTensor::Impl> impl, char* dst)
    : store_(store), info_(std::move(info)), impl_(std::move(impl)), dst_(dst) {}

TensorWriter::~TensorWriter() {
  if (impl_ != nullptr) store_->AbandonPut(info_, reserved_);
}

absl::Status TensorWriter::Claim(size_t size) {
  if (impl_ == nullptr) return absl::FailedPreconditionError("Put already committed");
  if (size > info_.nbytes - received_) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy payload is longer than its header declares: expected ", info_.nbytes,
                     " bytes, got at least ", received_ + size));
  }
  received_ += size;
  return absl::OkStatus();
}

absl::Status TensorWriter::Append(const char* data, size_t size) {
  if (info_.device != "cpu" && size > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the tensor is on ", info_.device, "; its bytes go through the transfer engine"));
  }
  char* at = dst_ + received_;
  RETURN_IF_ERROR(Claim(size));
  std::memcpy(at, data, size);
  return absl::OkStatus();
}

std::shared_ptr<ShmFile> TensorWriter::shm_file() const {
  return impl_ == nullptr ? nullptr : impl_->file;
}

std::shared_ptr<const void> TensorWriter::keepalive() const {
  if (impl_ == nullptr) return nullptr;
  return std::make_shared<const at::Tensor>(impl_->tensor);
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> TensorWriter::Commit() {
  if (impl_ == nullptr) return absl::FailedPreconditionError("Put already committed");
  if (received_ != info_.nbytes) {
    return absl::InvalidArgumentError(absl::StrCat("npy payload truncated: header declares ",
                                                   info_.nbytes, " bytes, only ", received_,
                                                   " arrived"));
  }
  try {
    at::Tensor& t = impl_->tensor;
    if (info_.meta.fortran_order && info_.meta.shape.size() > 1) {
      // The bytes are the C-order array of the reversed shape; its transpose
      // is the array. Store it in C order.
      std::vector<int64_t> dims(info_.meta.shape.size());
      for (size_t i = 0; i < dims.size(); ++i) dims[i] = dims.size() - 1 - i;
      t = t.permute(dims).contiguous();
      impl_->file.reset();  // the C-order copy is in ordinary memory now
      store_->CountContiguousCopy(info_.device, info_.nbytes);
    }
    info_.meta.fortran_order = false;
  } catch (const std::exception& e) {
    return TorchError("finishing Put", e);
  }
  reserved_ = false;  // the StoredTensor owns the reservation from here on
  auto impl = std::move(impl_);
  return store_->Publish(info_, std::move(impl), ephemeral_);
}

absl::StatusOr<std::unique_ptr<TensorStore>> TensorStore::Create(const Options& options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("clock is null");
  return std::unique_ptr<TensorStore>(new TensorStore(options));
}

TensorStore::TensorStore(const Options& options)
    : options_(options),
      accounts_(std::make_shared<StoreAccounts>(options.budget_bytes)),
      rng_(std::random_device{}()) {}

TensorStore::~TensorStore() = default;

int TensorStore::TorchCudaDeviceCount() {
  try {
    if (!at::globalContext().hasCUDA()) return 0;
    return at::detail::getCUDAHooks().getNumGPUs();
  } catch (const std::exception&) {
    return 0;
  }
}

absl::Status TensorStore::ValidateName(const std::string& name) const {
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("name is ", name.size(), " characters; at most ", kMaxNameLength));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || (i > 0 && (c == '.' || c == '-' || c == ':'));
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrFormat("name '%s' has character %d ('%c') outside [A-Za-z0-9_] (or "
                          "'.', '-', ':' after the first)",
                          name, i, c));
    }
  }
  return absl::OkStatus();
}

std::string TensorStore::NewHandleLocked() {
  for (;;) {
    std::string h = absl::StrFormat("t%016x", rng_());
    if (!options_.replica_id.empty()) absl::StrAppend(&h, "~", options_.replica_id);
    if (tensors_.count(h) == 0 && pending_.count(h) == 0) return h;
  }
}

absl::StatusOr<std::unique_ptr<TensorWriter>> TensorStore::BeginPut(const PutSpec& spec) {
  RETURN_IF_ERROR(npy::ValidateMeta(spec.meta));
  RETURN_IF_ERROR(ValidateName(spec.name));
  ASSIGN_OR_RETURN(std::string device, options_.devices.Resolve(spec.device));
  TensorInfo info;
  info.name = spec.name;
  info.meta = spec.meta;
  info.nbytes = spec.meta.NumBytes();
  info.device = device;
  RETURN_IF_ERROR(Reserve(spec.name, spec.ttl_seconds, spec.ephemeral, &info));
  auto impl = std::make_unique<StoredTensor::Impl>();
  std::vector<int64_t> dims = spec.meta.shape;
  if (spec.meta.fortran_order) std::reverse(dims.begin(), dims.end());
  const auto tensor_options =
      at::TensorOptions().dtype(StorageTypeOf(spec.meta.dtype)).device(TorchDeviceOf(info.device));
  if (info.device == "cpu" && !spec.ephemeral && options_.shm != nullptr) {
    // The tensor's storage is its .npy file in the shm folder.
    npy::ArrayMeta c_order = spec.meta;
    c_order.fortran_order = false;
    auto file = options_.shm->CreateFile(npy::WriteHeader(c_order), info.nbytes, info.handle);
    if (!file.ok()) {
      AbandonPut(info, /*reserved=*/true);
      return file.status();
    }
    impl->file = *file;
    try {
      impl->tensor =
          at::from_blob((*file)->payload(), dims, [keep = *file](void*) {}, tensor_options);
    } catch (const std::exception& e) {
      AbandonPut(info, /*reserved=*/true);
      return TorchError("wrapping the shm file", e);
    }
    std::unique_ptr<TensorWriter> writer(
        new TensorWriter(this, std::move(info), std::move(impl), (*file)->payload()));
    return writer;
  }
  // Host tensors of some size take their memory from the pool (given back to
  // the kernel when the daemon idles), the rest from LibTorch's allocator.
  const std::shared_ptr<HostMemoryPool>& pool = options_.host_memory;
  void* block = nullptr;
  if (pool != nullptr && info.device == "cpu" && info.nbytes >= HostMemoryPool::kMinBlockBytes) {
    block = pool->Allocate(info.nbytes);
  }
  try {
    if (block != nullptr) {
      void* const wrapped = std::exchange(block, nullptr);  // the deleter owns it now
      impl->tensor = at::from_blob(
          wrapped, dims, [pool, n = info.nbytes](void* p) { pool->Free(p, n); }, tensor_options);
    } else {
      impl->tensor = at::empty(dims, tensor_options);
    }
  } catch (const std::exception& e) {
    AbandonPut(info, /*reserved=*/true);
    return absl::ResourceExhaustedError(
        absl::StrCat("could not allocate ", info.nbytes, " bytes for the tensor: ", e.what()));
  }
  char* dst = static_cast<char*>(impl->tensor.data_ptr());
  if (info.device == "cpu") AdviseHugePages(dst, info.nbytes);
  std::unique_ptr<TensorWriter> writer(
      new TensorWriter(this, std::move(info), std::move(impl), dst));
  writer->ephemeral_ = spec.ephemeral;
  return writer;
}

absl::Status TensorStore::Reserve(const std::string& name, uint32_t ttl_seconds, bool ephemeral,
                                  TensorInfo* info) {
  // Expired tensors go first (freed outside the lock), so their budget is
  // back before this reservation.
  SweepExpired();
  absl::MutexLock lock(&mu_);
  const int64_t now = options_.clock->NowUnixMs();
  if (ephemeral) {
    info->handle.clear();
  } else if (name.empty()) {
    info->handle = NewHandleLocked();
  } else if (tensors_.count(name) > 0 || pending_.count(name) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("a tensor named '", name, "' already exists"));
  } else {
    info->handle = name;
  }
  info->created_unix_ms = now;
  info->expires_unix_ms = ttl_seconds == 0 ? 0 : now + int64_t{ttl_seconds} * 1000;
  RETURN_IF_ERROR(accounts_->budget.Reserve(info->device, info->nbytes));
  if (!ephemeral) pending_.insert(info->handle);
  return absl::OkStatus();
}

void TensorStore::AbandonPut(const TensorInfo& info, bool reserved) {
  if (reserved) accounts_->budget.Release(info.device, info.nbytes);
  absl::MutexLock lock(&mu_);
  pending_.erase(info.handle);
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> TensorStore::Publish(
    TensorInfo info, std::unique_ptr<StoredTensor::Impl> impl, bool ephemeral) {
  // Constructing outside the lock: it formats the header.
  const std::string handle = info.handle;
  std::shared_ptr<const StoredTensor> stored(
      new StoredTensor(std::move(info), std::move(impl), accounts_));
  if (ephemeral) return stored;
  absl::MutexLock lock(&mu_);
  pending_.erase(handle);
  tensors_[handle] = stored;
  return stored;
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> TensorStore::Insert(
    const at::Tensor& tensor, npy::DType dtype, const InsertOptions& options) {
  const std::string& name = options.name;
  const uint32_t ttl_seconds = options.ttl_seconds;
  RETURN_IF_ERROR(ValidateName(name));
  TensorInfo info;
  info.name = name.empty() ? options.label : name;
  info.meta.dtype = dtype;
  at::Tensor contiguous;
  try {
    if (tensor.element_size() != npy::ItemSize(dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor elements are ", tensor.element_size(),
                                                     " bytes but ", npy::Name(dtype), " needs ",
                                                     npy::ItemSize(dtype)));
    }
    // Made contiguous on its own device, never via the host.
    contiguous = tensor.is_contiguous() ? tensor : tensor.contiguous();
    if (!tensor.is_contiguous()) {
      CountContiguousCopy(DeviceName(contiguous), contiguous.nbytes());
    }
    info.meta.shape.assign(contiguous.sizes().begin(), contiguous.sizes().end());
    info.device = DeviceName(contiguous);
  } catch (const std::exception& e) {
    return TorchError("storing tensor", e);
  }
  RETURN_IF_ERROR(npy::ValidateMeta(info.meta));
  info.nbytes = info.meta.NumBytes();
  RETURN_IF_ERROR(Reserve(name, ttl_seconds, options.ephemeral, &info));
  auto impl = std::make_unique<StoredTensor::Impl>();
  impl->tensor = std::move(contiguous);
  return Publish(std::move(info), std::move(impl), options.ephemeral);
}

void TensorStore::CountContiguousCopy(const std::string& device, uint64_t bytes) {
  if (options_.metrics != nullptr) options_.metrics->ContiguousCopy(device, bytes);
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> TensorStore::Acquire(
    const std::string& handle) {
  std::shared_ptr<const StoredTensor> expired;  // freed after the lock
  {
    absl::MutexLock lock(&mu_);
    auto it = tensors_.find(handle);
    if (it != tensors_.end()) {
      const int64_t expires = it->second->info().expires_unix_ms;
      if (expires == 0 || expires > options_.clock->NowUnixMs()) return it->second;
      expired = std::move(it->second);
      tensors_.erase(it);
    }
  }
  if (expired != nullptr) expired->UnlinkShm();
  return Missing(handle);
}

absl::Status TensorStore::Missing(const std::string& handle) const {
  const size_t tilde = handle.rfind('~');
  if (tilde != std::string::npos && !options_.replica_id.empty()) {
    const std::string owner = handle.substr(tilde + 1);
    if (owner != options_.replica_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "handle '", handle, "' belongs to replica '", owner, "'; this is replica '",
          options_.replica_id,
          "': send calls for a handle to the replica that made it (session affinity)"));
    }
  }
  return absl::NotFoundError(absl::StrCat("no tensor with handle '", handle, "'"));
}

std::vector<TensorInfo> TensorStore::List() {
  std::vector<TensorInfo> out;
  Dropped expired;  // freed after the lock
  {
    absl::MutexLock lock(&mu_);
    SweepExpiredLocked(options_.clock->NowUnixMs(), &expired);
    out.reserve(tensors_.size());
    for (const auto& [handle, t] : tensors_) out.push_back(t->info());
  }
  for (const auto& t : expired) t->UnlinkShm();
  std::stable_sort(out.begin(), out.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.created_unix_ms < b.created_unix_ms;
  });
  return out;
}

absl::Status TensorStore::Release(const std::string& handle) {
  std::unique_ptr<TensorWriter> abandoned;  // an uncommitted Allocate, after the lock
  Dropped dropped;                          // freed after the lock
  bool found = false;
  {
    absl::MutexLock lock(&mu_);
    SweepExpiredLocked(options_.clock->NowUnixMs(), &dropped);
    auto it = tensors_.find(handle);
    if (it != tensors_.end()) {
      found = true;
      dropped.push_back(std::move(it->second));
      tensors_.erase(it);
    } else if (auto a = allocations_.find(handle); a != allocations_.end()) {
      found = true;
      abandoned = std::move(a->second.writer);
      allocations_.erase(a);
    }
  }
  // The file's name goes now; mappings clients hold stay valid.
  for (const auto& t : dropped) t->UnlinkShm();
  if (!found) return Missing(handle);
  return absl::OkStatus();
}

int TensorStore::SweepExpired() {
  // Both freed after the lock: possibly gigabytes; abandoning an allocation
  // takes the lock itself.
  std::vector<std::unique_ptr<TensorWriter>> abandoned;
  Dropped expired;
  int n = 0;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = options_.clock->NowUnixMs();
    n = SweepExpiredLocked(now, &expired);
    SweepAllocationsLocked(now, &abandoned);
  }
  for (const auto& t : expired) t->UnlinkShm();
  return n;
}

void TensorStore::SweepAllocationsLocked(int64_t now_ms,
                                         std::vector<std::unique_ptr<TensorWriter>>* expired) {
  for (auto it = allocations_.begin(); it != allocations_.end();) {
    const int64_t expires = it->second.expires_unix_ms;
    if (expires != 0 && expires <= now_ms) {
      expired->push_back(std::move(it->second.writer));
      it = allocations_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<TensorStore::Allocation> TensorStore::Allocate(const PutSpec& spec) {
  RETURN_IF_ERROR(RequireShm());
  ASSIGN_OR_RETURN(std::string device, options_.devices.Resolve(spec.device));
  if (device != "cpu") {
    return absl::FailedPreconditionError(
        absl::StrCat("Allocate places tensors in host memory, but device '", spec.device,
                     "' resolves to ", device, "; send it with Put instead"));
  }
  PutSpec host = spec;
  host.device = "cpu";
  host.ephemeral = false;
  host.meta.fortran_order = false;
  ASSIGN_OR_RETURN(std::unique_ptr<TensorWriter> writer, BeginPut(host));
  Allocation allocation{writer->info_, writer->impl_->file};
  // The client writes every payload byte itself, through its mapping.
  RETURN_IF_ERROR(writer->Claim(writer->expected()));
  const int64_t timeout = options_.allocation_timeout_ms;
  absl::MutexLock lock(&mu_);
  PendingAllocation& pending = allocations_[allocation.info.handle];
  pending.writer = std::move(writer);
  pending.expires_unix_ms = timeout > 0 ? options_.clock->NowUnixMs() + timeout : 0;
  return allocation;
}

absl::StatusOr<std::shared_ptr<const StoredTensor>> TensorStore::CommitAllocation(
    const std::string& handle) {
  std::unique_ptr<TensorWriter> writer;
  {
    absl::MutexLock lock(&mu_);
    auto it = allocations_.find(handle);
    if (it == allocations_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no allocation with handle '", handle,
                       "' (never allocated, already committed, or expired after --idle-timeout)"));
    }
    writer = std::move(it->second.writer);
    allocations_.erase(it);
  }
  return writer->Commit();
}

absl::Status TensorStore::RequireShm() const {
  if (options_.shm == nullptr) return absl::FailedPreconditionError(kNoShm);
  return absl::OkStatus();
}

size_t TensorStore::allocations() {
  absl::MutexLock lock(&mu_);
  return allocations_.size();
}

absl::StatusOr<std::shared_ptr<ShmFile>> TensorStore::MapShm(
    const std::shared_ptr<const StoredTensor>& tensor,
    const std::function<absl::Status(const std::shared_ptr<ShmFile>& file)>& fill) {
  RETURN_IF_ERROR(RequireShm());
  if (tensor->impl_->file != nullptr) return tensor->impl_->file;
  const TensorInfo& info = tensor->info();
  absl::MutexLock lock(&tensor->shm_mu_);
  if (tensor->unlinked_) {
    return absl::NotFoundError(absl::StrCat("no tensor with handle '", info.handle, "'"));
  }
  if (tensor->shm_copy_ != nullptr) return tensor->shm_copy_;
  RETURN_IF_ERROR(accounts_->budget.Reserve("cpu", info.nbytes));
  absl::StatusOr<std::shared_ptr<ShmFile>> file =
      options_.shm->CreateFile(tensor->npy_header(), info.nbytes, info.handle);
  if (file.ok()) {
    if (absl::Status s = fill(*file); !s.ok()) file = s;
  }
  if (!file.ok()) {
    accounts_->budget.Release("cpu", info.nbytes);
    return file.status();
  }
  tensor->shm_copy_ = *file;
  return *file;
}

int TensorStore::SweepExpiredLocked(int64_t now_ms, Dropped* expired) {
  int n = 0;
  for (auto it = tensors_.begin(); it != tensors_.end();) {
    const int64_t expires = it->second->info().expires_unix_ms;
    if (expires != 0 && expires <= now_ms) {
      expired->push_back(std::move(it->second));
      it = tensors_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

size_t TensorStore::size() {
  absl::MutexLock lock(&mu_);
  return tensors_.size();
}

}  // namespace npystream
