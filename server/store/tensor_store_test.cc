#include "server/store/tensor_store.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/from_blob.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/npy/npy_writer.h"
#include "server/testing/fake_clock.h"
#include "server/testing/numpy_cases_testing.h"
#include "server/testing/store_testing.h"
#include "server/testing/temp_dir.h"

namespace npystream {
namespace {

class RecordingStoreMetrics : public StoreMetrics {
 public:
  void ContiguousCopy(const std::string& device, uint64_t bytes) override {
    copies.emplace_back(device, bytes);
  }
  std::vector<std::pair<std::string, uint64_t>> copies;
};

class TensorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = MakeStore(1 << 20); }

  std::unique_ptr<TensorStore> MakeStore(uint64_t budget) {
    TensorStore::Options options;
    options.clock = &clock_;
    options.budget_bytes = budget;
    options.metrics = &metrics_;
    return *TensorStore::Create(options);
  }

  static TensorStore::PutSpec Spec(std::vector<int64_t> shape, std::string name = "",
                                   npy::DType dtype = npy::DType::kFloat32) {
    TensorStore::PutSpec spec;
    spec.name = std::move(name);
    spec.meta.dtype = dtype;
    spec.meta.shape = std::move(shape);
    return spec;
  }

  // Puts `bytes` (the payload) in pieces of 7 bytes.
  absl::StatusOr<std::shared_ptr<const StoredTensor>> Put(TensorStore::PutSpec spec,
                                                          const std::string& bytes) {
    auto writer = store_->BeginPut(spec);
    if (!writer.ok()) return writer.status();
    for (size_t i = 0; i < bytes.size(); i += 7) {
      absl::Status s = (*writer)->Append(bytes.data() + i, std::min<size_t>(7, bytes.size() - i));
      if (!s.ok()) return s;
    }
    return (*writer)->Commit();
  }

  static std::string Pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 31 + 7);
    return s;
  }

  FakeClock clock_;
  RecordingStoreMetrics metrics_;
  std::unique_ptr<TensorStore> store_;
};

TEST_F(TensorStoreTest, PutThenAcquireReturnsTheBytes) {
  const std::string payload = Pattern(3 * 4 * 4);
  auto t = Put(Spec({3, 4}, "weights"), payload);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->info().handle, "weights");
  EXPECT_EQ((*t)->info().device, "cpu");
  EXPECT_EQ((*t)->info().nbytes, payload.size());
  EXPECT_EQ((*t)->npy_header(), npy::WriteHeader((*t)->info().meta));
  EXPECT_EQ((*t)->info().npy_bytes, (*t)->npy_header().size() + payload.size());
  auto again = store_->Acquire("weights");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::string((*again)->host_data(), payload.size()), payload);
  EXPECT_EQ(store_->budget().used("cpu"), payload.size());
}

TEST_F(TensorStoreTest, UnnamedPutsGetDistinctHandles) {
  auto a = Put(Spec({2}), Pattern(8));
  auto b = Put(Spec({2}), Pattern(8));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->info().handle, (*b)->info().handle);
  EXPECT_EQ(store_->List().size(), 2u);
}

TEST_F(TensorStoreTest, DuplicateNameIsAlreadyExistsEvenWhilePending) {
  ASSERT_TRUE(Put(Spec({1}, "x"), Pattern(4)).ok());
  EXPECT_EQ(Put(Spec({1}, "x"), Pattern(4)).status().code(), absl::StatusCode::kAlreadyExists);
  auto pending = store_->BeginPut(Spec({1}, "y"));
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(store_->BeginPut(Spec({1}, "y")).status().code(), absl::StatusCode::kAlreadyExists);
  pending->reset();  // abandoned: the name is free again
  EXPECT_TRUE(Put(Spec({1}, "y"), Pattern(4)).ok());
}

TEST_F(TensorStoreTest, WrongPayloadLengthsAreInvalidArgument) {
  auto writer = store_->BeginPut(Spec({2, 2}));
  ASSERT_TRUE(writer.ok());
  const std::string payload = Pattern(20);
  absl::Status s = (*writer)->Append(payload.data(), payload.size());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("longer than its header"), std::string::npos);
  ASSERT_TRUE((*writer)->Append(payload.data(), 10).ok());
  auto committed = (*writer)->Commit();
  EXPECT_EQ(committed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(committed.status().message().find("truncated"), std::string::npos);
  writer->reset();
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
  EXPECT_EQ(store_->size(), 0u);
}

TEST_F(TensorStoreTest, BudgetIsResourceExhaustedAndNeverEvicts) {
  ASSERT_TRUE(Put(Spec({200000}, "big"), Pattern(800000)).ok());
  auto over = store_->BeginPut(Spec({100000}, "more"));
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("store budget exceeded on cpu"), std::string::npos);
  auto big = store_->Acquire("big");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(std::string((*big)->host_data(), 800000), Pattern(800000));
}

TEST_F(TensorStoreTest, TtlExpires) {
  auto spec = Spec({1}, "short");
  spec.ttl_seconds = 5;
  auto t = Put(spec, Pattern(4));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->info().expires_unix_ms, (*t)->info().created_unix_ms + 5000);
  t->reset();
  clock_.AdvanceMs(4999);
  EXPECT_TRUE(store_->Acquire("short").ok());
  clock_.AdvanceMs(1);
  EXPECT_EQ(store_->Acquire("short").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->List().empty());
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
}

TEST_F(TensorStoreTest, PinKeepsMemoryAfterRelease) {
  const std::string payload = Pattern(4096);
  ASSERT_TRUE(Put(Spec({1024}, "pinned"), payload).ok());
  auto pin = store_->Acquire("pinned");
  ASSERT_TRUE(pin.ok());
  ASSERT_TRUE(store_->Release("pinned").ok());
  EXPECT_EQ(store_->Release("pinned").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Acquire("pinned").status().code(), absl::StatusCode::kNotFound);
  // Still readable and still counted while pinned.
  EXPECT_EQ(std::string((*pin)->host_data(), payload.size()), payload);
  EXPECT_EQ(store_->budget().used("cpu"), payload.size());
  EXPECT_EQ(store_->resident_count(), 1);
  pin->reset();
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
  EXPECT_EQ(store_->resident_count(), 0);
}

TEST_F(TensorStoreTest, LargeHostPutsUseTheMemoryPoolAndReleaseKeepsTheBlock) {
  auto pool = HostMemoryPool::Create({});
  TensorStore::Options options;
  options.clock = &clock_;
  options.budget_bytes = 8 << 20;
  options.host_memory = pool;
  store_ = *TensorStore::Create(options);
  const size_t big = HostMemoryPool::kMinBlockBytes * 2, small = HostMemoryPool::kMinBlockBytes / 2;
  auto t = Put(Spec({static_cast<int64_t>(big / 4)}, "big"), Pattern(big));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(Put(Spec({static_cast<int64_t>(small / 4)}, "small"), Pattern(small)).ok());
  EXPECT_EQ(pool->in_use_bytes(), HostMemoryPool::BlockSize(big));  // the small one: malloc
  EXPECT_EQ(std::string((*t)->host_data(), big), Pattern(big));
  const char* block = (*t)->host_data();
  t->reset();
  ASSERT_TRUE(store_->Release("big").ok());
  EXPECT_EQ(pool->in_use_bytes(), 0u);
  EXPECT_EQ(pool->cached_bytes(), HostMemoryPool::BlockSize(big));
  // The next Put of that size reuses the block, and holds its own bytes.
  auto again = Put(Spec({static_cast<int64_t>(big / 4)}, "again"), std::string(big, 'x'));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->host_data(), block);
  EXPECT_EQ(std::string((*again)->host_data(), big), std::string(big, 'x'));
  EXPECT_EQ(pool->cached_bytes(), 0u);
}

TEST_F(TensorStoreTest, FortranOrderIsConvertedToCOrder) {
  // (2, 3) in Fortran order: column-major bytes of [[0,1,2],[3,4,5]].
  const int16_t column_major[] = {0, 3, 1, 4, 2, 5};
  auto spec = Spec({2, 3}, "f", npy::DType::kInt16);
  spec.meta.fortran_order = true;
  auto t = Put(spec, std::string(reinterpret_cast<const char*>(column_major), 12));
  ASSERT_TRUE(t.ok()) << t.status();
  const int16_t* c = reinterpret_cast<const int16_t*>((*t)->host_data());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c[i], i);
  EXPECT_FALSE((*t)->info().meta.fortran_order);
  EXPECT_EQ((*t)->info().meta.shape, (std::vector<int64_t>{2, 3}));
  // The conversion is a contiguous copy on the tensor's device, counted.
  ASSERT_EQ(metrics_.copies.size(), 1u);
  EXPECT_EQ(metrics_.copies[0], std::make_pair(std::string("cpu"), uint64_t{12}));
}

TEST_F(TensorStoreTest, NamesAndDevicesAreValidated) {
  EXPECT_EQ(store_->BeginPut(Spec({1}, "bad name")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->BeginPut(Spec({1}, "../etc")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto spec = Spec({1});
  spec.device = "cuda:0";
  auto s = store_->BeginPut(spec);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("not available"), std::string::npos);
  spec.device = "tpu";
  EXPECT_EQ(store_->BeginPut(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

// A non-contiguous tensor is stored in C order: header and payload equal what
// numpy.save writes for the same (transposed) array.
TEST_F(TensorStoreTest, NonContiguousInsertMatchesNumpySave) {
  store_ = MakeStore(1 << 30);
  at::Tensor t = at::arange(60, at::TensorOptions().dtype(c10::ScalarType::Int))
                     .reshape({3, 4, 5})
                     .permute({2, 0, 1});
  ASSERT_FALSE(t.is_contiguous());
  auto stored = testing::InsertNamed(store_.get(), t, npy::DType::kInt32, "nc", 0);
  ASSERT_TRUE(stored.ok()) << stored.status();
  const std::string numpy =
      npy::testing::ReadFile(npy::testing::NumpyCasesDir() + "/noncontig_int32.npy");
  const std::string ours =
      (*stored)->npy_header() + std::string((*stored)->host_data(), (*stored)->info().nbytes);
  EXPECT_EQ(ours, numpy);
  ASSERT_EQ(metrics_.copies.size(), 1u);
  EXPECT_EQ(metrics_.copies[0], std::make_pair(std::string("cpu"), uint64_t{240}));
  // A contiguous tensor is stored as it is: no copy, nothing counted.
  ASSERT_TRUE(testing::InsertNamed(store_.get(), t.contiguous(), npy::DType::kInt32, "c", 0).ok());
  EXPECT_EQ(metrics_.copies.size(), 1u);
}

TEST_F(TensorStoreTest, InsertChecksItemSize) {
  at::Tensor t = at::arange(4, at::TensorOptions().dtype(c10::ScalarType::Float));
  EXPECT_EQ(testing::InsertNamed(store_.get(), t, npy::DType::kFloat64, "", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TensorStoreTest, HandlesCarryTheReplicaAndOthersAreNamedNotMissing) {
  TensorStore::Options options;
  options.clock = &clock_;
  options.replica_id = "pod-a";
  auto store = *TensorStore::Create(options);
  auto writer = store->BeginPut(Spec({1}));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("abcd", 4).ok());
  auto stored = (*writer)->Commit();
  ASSERT_TRUE(stored.ok());
  const std::string handle = (*stored)->info().handle;
  EXPECT_EQ(handle.size(), 17u + 6u) << handle;
  EXPECT_EQ(handle.substr(17), "~pod-a");
  EXPECT_TRUE(store->Acquire(handle).ok());
  // Another replica's handle: FAILED_PRECONDITION naming the owner.
  auto other = store->Acquire("t0123456789abcdef~pod-b");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("replica 'pod-b'"), std::string::npos);
  EXPECT_EQ(store->Release("t0123456789abcdef~pod-b").code(),
            absl::StatusCode::kFailedPrecondition);
  // Our own, expired or never made: NOT_FOUND. Names cannot forge an owner.
  EXPECT_EQ(store->Acquire("t0123456789abcdef~pod-a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->BeginPut(Spec({1}, "x~pod-b")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace npystream

namespace npystream {
namespace {

// Freeing a large tensor can take long (munmap of gigabytes, a GPU free):
// it must never happen under the store's lock. The tensor's deleter blocks
// until told; meanwhile Stat-like calls must go through.
TEST(TensorStoreLockTest, ExpiringALargeTensorDoesNotBlockConcurrentCalls) {
  FakeClock clock;
  TensorStore::Options options;
  options.clock = &clock;
  auto store = *TensorStore::Create(options);
  static float data[1024];
  absl::Notification deleter_entered, release_deleter;
  at::Tensor blocking = at::from_blob(
      data, {1024},
      [&](void*) {
        deleter_entered.Notify();
        release_deleter.WaitForNotification();
      },
      at::TensorOptions().dtype(c10::ScalarType::Float));
  ASSERT_TRUE(testing::InsertNamed(store.get(), blocking, npy::DType::kFloat32, "big", 1).ok());
  blocking = at::Tensor();  // the store holds the last reference
  ASSERT_TRUE(testing::InsertNamed(store.get(),
                                   at::arange(4, at::TensorOptions().dtype(c10::ScalarType::Float)),
                                   npy::DType::kFloat32, "small")
                  .ok());
  clock.AdvanceMs(2000);
  std::thread sweeper([&] { EXPECT_EQ(store->SweepExpired(), 1); });
  ASSERT_TRUE(deleter_entered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // The sweeper is now inside the free. Acquire and List must not wait for it.
  absl::Notification stat_done;
  std::thread stat([&] {
    EXPECT_TRUE(store->Acquire("small").ok());
    EXPECT_EQ(store->List().size(), 1u);
    stat_done.Notify();
  });
  const bool unblocked = stat_done.WaitForNotificationWithTimeout(absl::Seconds(10));
  release_deleter.Notify();
  sweeper.join();
  stat.join();
  EXPECT_TRUE(unblocked) << "a Stat waited for a tensor being freed under the store lock";
}

}  // namespace
}  // namespace npystream

namespace npystream {
namespace {

// --shm-dir: host tensors are .npy files in the folder; Release unlinks;
// Allocate/Commit; Map copies of other tensors.
class TensorStoreShmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(root_.empty());
    auto dir = ShmDir::Create({root_, ""});
    ASSERT_TRUE(dir.ok()) << dir.status();
    TensorStore::Options options;
    options.clock = &clock_;
    options.budget_bytes = 1 << 20;
    options.shm = *dir;
    options.allocation_timeout_ms = 5000;
    store_ = *TensorStore::Create(options);
  }
  void TearDown() override { store_.reset(); }
  static TensorStore::PutSpec Spec(std::vector<int64_t> shape, std::string name = "") {
    TensorStore::PutSpec spec;
    spec.name = std::move(name);
    spec.meta.dtype = npy::DType::kInt16;
    spec.meta.shape = std::move(shape);
    return spec;
  }

  FakeClock clock_;
  testing::TempDir dir_{"/dev/shm", "npystream_store_test"};
  const std::string root_ = dir_.path();
  std::unique_ptr<TensorStore> store_;
};

TEST_F(TensorStoreShmTest, HostPutIsItsNpyFileAndReleaseUnlinksIt) {
  auto writer = store_->BeginPut(Spec({3, 5}, "a"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::string payload(30, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  ASSERT_TRUE((*writer)->Append(payload.data(), payload.size()).ok());
  auto stored = (*writer)->Commit();
  ASSERT_TRUE(stored.ok());
  auto file = (*stored)->shm_file();
  ASSERT_NE(file, nullptr);
  EXPECT_EQ((*stored)->host_data(), file->payload());  // the file is the storage
  EXPECT_EQ(npy::testing::ReadFile(file->path()), (*stored)->npy_header() + payload);
  EXPECT_EQ(file->data_offset(), (*stored)->npy_header().size());
  ASSERT_TRUE(store_->Release("a").ok());
  EXPECT_FALSE(std::filesystem::exists(file->path()));
  // A pin (a Fetch in flight) still reads the bytes.
  EXPECT_EQ(std::string((*stored)->host_data(), 30), payload);
  stored->reset();
  file.reset();
  EXPECT_EQ(store_->shm()->bytes(), 0);
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
}

TEST_F(TensorStoreShmTest, AllocateThenCommitPublishesWhatTheClientWrote) {
  auto allocation = store_->Allocate(Spec({4}, "b"));
  ASSERT_TRUE(allocation.ok()) << allocation.status();
  EXPECT_EQ(store_->Acquire("b").status().code(), absl::StatusCode::kNotFound);  // not yet
  EXPECT_EQ(store_->Allocate(Spec({4}, "b")).status().code(), absl::StatusCode::kAlreadyExists);
  std::memcpy(allocation->file->payload(), "abcdefgh", 8);
  auto committed = store_->CommitAllocation("b");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(std::string((*committed)->host_data(), 8), "abcdefgh");
  EXPECT_EQ(store_->CommitAllocation("b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Acquire("b").ok());
}

TEST_F(TensorStoreShmTest, UncommittedAllocationExpiresAndReturnsItsBudget) {
  auto allocation = store_->Allocate(Spec({1000}));
  ASSERT_TRUE(allocation.ok());
  const std::string path = allocation->file->path();
  const std::string handle = allocation->info.handle;
  allocation->file.reset();
  EXPECT_EQ(store_->budget().used("cpu"), 2000u);
  clock_.AdvanceMs(4999);
  store_->SweepExpired();
  EXPECT_EQ(store_->allocations(), 1u);
  clock_.AdvanceMs(1);
  store_->SweepExpired();
  EXPECT_EQ(store_->allocations(), 0u);
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(store_->CommitAllocation(handle).status().code(), absl::StatusCode::kNotFound);
  // Release drops an allocation at once.
  auto another = store_->Allocate(Spec({10}, "r"));
  ASSERT_TRUE(another.ok());
  another->file.reset();
  ASSERT_TRUE(store_->Release("r").ok());
  EXPECT_EQ(store_->allocations(), 0u);
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
}

TEST_F(TensorStoreShmTest, MapOfAnInsertedTensorCopiesOnceIntoTheBudget) {
  at::Tensor t = at::arange(6, at::TensorOptions().dtype(c10::ScalarType::Short));
  auto stored = testing::InsertNamed(store_.get(), t, npy::DType::kInt16, "c");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ((*stored)->shm_file(), nullptr);
  int fills = 0;
  auto fill = [&](const std::shared_ptr<ShmFile>& file) {
    ++fills;
    std::memcpy(file->payload(), (*stored)->host_data(), 12);
    return absl::OkStatus();
  };
  auto file = store_->MapShm(*stored, fill);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(store_->budget().used("cpu"), 24u);  // the tensor and its copy
  auto again = store_->MapShm(*stored, fill);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), file->get());
  EXPECT_EQ(fills, 1);
  EXPECT_EQ(npy::testing::ReadFile((*file)->path()),
            (*stored)->npy_header() + std::string((*stored)->host_data(), 12));
  const std::string path = (*file)->path();
  file->reset();
  again->reset();
  stored->reset();
  ASSERT_TRUE(store_->Release("c").ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(store_->budget().used("cpu"), 0u);
}

TEST_F(TensorStoreShmTest, ErrorsNameTheirCause) {
  TensorStore::Options plain;
  plain.clock = &clock_;
  auto no_shm = *TensorStore::Create(plain);
  auto a = no_shm->Allocate(Spec({1}));
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(a.status().message().find("--shm-dir"), std::string::npos);
  auto too_big = store_->Allocate(Spec({1 << 20}));
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted);
  // Ephemeral host tensors (inline Infer inputs) stay in ordinary memory.
  auto spec = Spec({2});
  spec.ephemeral = true;
  auto writer = store_->BeginPut(spec);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("abcd", 4).ok());
  auto eph = (*writer)->Commit();
  ASSERT_TRUE(eph.ok());
  EXPECT_EQ((*eph)->shm_file(), nullptr);
}

}  // namespace
}  // namespace npystream
