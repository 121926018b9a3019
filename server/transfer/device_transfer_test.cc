#include "server/transfer/device_transfer.h"

#include <atomic>
#include <future>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "server/transfer/fake_copy_device.h"

namespace npystream {
namespace {

constexpr size_t kSlot = 64 << 10;

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::shared_ptr<StagingRing> MakeRing(CopyDevice* device, int slots, int cap = 0) {
  StagingRing::Options o;
  o.ring_bytes = kSlot * slots;
  o.slot_bytes = kSlot;
  o.max_slots_per_owner = cap;
  o.device = device;
  return *StagingRing::Create(o);
}

// Reads the whole payload in `piece`-byte requests, keeping the last `hold`
// chunks alive (as gRPC does with slices it has not yet written), like a
// fetch. `hold` must stay under the ring's per-fetch cap: a consumer that
// holds its whole cap while asking for more waits forever by design.
std::string ReadAll(PayloadReader* reader, uint64_t nbytes, size_t piece, size_t hold,
                    std::vector<HostChunk>* held = nullptr) {
  std::string out;
  std::deque<HostChunk> in_flight;
  while (out.size() < nbytes) {
    std::promise<absl::StatusOr<HostChunk>> p;
    reader->Read(out.size(), std::min<uint64_t>(piece, nbytes - out.size()),
                 [&p](absl::StatusOr<HostChunk> c) { p.set_value(std::move(c)); });
    auto chunk = p.get_future().get();
    EXPECT_TRUE(chunk.ok()) << chunk.status();
    if (!chunk.ok()) break;
    EXPECT_GT(chunk->size, 0u);
    out.append(chunk->data, chunk->size);
    in_flight.push_back(std::move(*chunk));
    while (in_flight.size() > hold) in_flight.pop_front();
  }
  if (held != nullptr) held->assign(in_flight.begin(), in_flight.end());
  return out;
}

TEST(StagingRingTest, LendsAndTakesBackSlotsWithCapAndFifoWaiters) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 4, /*cap=*/2);
  EXPECT_EQ(device.pinned_bytes(), static_cast<int64_t>(4 * kSlot));
  const uint64_t a = ring->NewOwner(), b = ring->NewOwner();
  auto a1 = ring->TryAcquire(a, nullptr), a2 = ring->TryAcquire(a, nullptr);
  ASSERT_TRUE(a1 && a2);
  EXPECT_EQ(ring->TryAcquire(a, nullptr), nullptr);  // at its cap, though 2 are free
  auto b1 = ring->TryAcquire(b, nullptr), b2 = ring->TryAcquire(b, nullptr);
  ASSERT_TRUE(b1 && b2);
  EXPECT_EQ(ring->free_slots(), 0);
  std::shared_ptr<SlotLease> granted;
  EXPECT_EQ(ring->TryAcquire(b, [&](std::shared_ptr<SlotLease> l) { granted = std::move(l); }),
            nullptr);
  a1.reset();  // a slot comes back, but b is at its cap: it stays free for a
  EXPECT_EQ(granted, nullptr);
  EXPECT_EQ(ring->free_slots(), 1);
  b1.reset();  // now b is under its cap: its queued request is served
  ASSERT_NE(granted, nullptr);
  EXPECT_EQ(ring->free_slots(), 1);
  a2.reset();
  b2.reset();
  granted.reset();
  EXPECT_EQ(ring->free_slots(), 4);
}

TEST(DeviceTransferTest, BytesArriveInOrderDespiteOutOfOrderCopies) {
  FakeCopyDevice device(/*streams=*/4, /*seed=*/7);
  auto ring = MakeRing(&device, 8);
  for (size_t n : {size_t{1}, kSlot - 1, kSlot, 10 * kSlot + 123, 37 * kSlot}) {
    const std::string src = Pattern(n, static_cast<unsigned>(n));
    for (size_t piece : {size_t{4096}, kSlot / 3, kSlot, 3 * kSlot}) {
      auto reader = NewDeviceReader(ring, &device, src.data(), n, nullptr, 8, nullptr);
      EXPECT_EQ(ReadAll(reader.get(), n, piece, 2), src) << n << " " << piece;
    }
  }
  device.Drain();
  EXPECT_EQ(ring->free_slots(), ring->slot_count());
}

TEST(DeviceTransferTest, SlotsAreReusedAndTheRingNeverGrows) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 4);
  const std::string src = Pattern(100 * kSlot, 3);
  auto reader = NewDeviceReader(ring, &device, src.data(), src.size(), nullptr, 8, nullptr);
  EXPECT_EQ(ReadAll(reader.get(), src.size(), kSlot, 1), src);
  EXPECT_EQ(device.copies_started(), 100);
  EXPECT_EQ(device.pinned_bytes(), static_cast<int64_t>(4 * kSlot));  // only the ring
  reader.reset();
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 4);
}

TEST(DeviceTransferTest, BackpressureStopsCopiesWhileGrpcHoldsTheChunks) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 8, /*cap=*/3);
  // The source stays alive while copies are in flight (as the tensor's pin
  // does in DeviceTransfer): this test ends with prefetched copies queued.
  auto keep = std::make_shared<std::string>(Pattern(20 * kSlot, 5));
  const std::string& src = *keep;
  auto reader = NewDeviceReader(ring, &device, src.data(), src.size(), keep, 8, nullptr);
  std::vector<HostChunk> held;
  // A consumer that holds the last 3 chunks (a slow client's unsent slices).
  std::string got = ReadAll(reader.get(), 3 * kSlot, kSlot, 3, &held);
  EXPECT_EQ(got, src.substr(0, 3 * kSlot));
  device.Drain();
  // The fetch is at its cap: no copy beyond the 3 slots it holds started.
  EXPECT_EQ(device.copies_started(), 3);
  EXPECT_EQ(ring->free_slots(), 5);
  // Releasing the chunks lets it go on.
  std::promise<absl::StatusOr<HostChunk>> p;
  held.clear();
  reader->Read(3 * kSlot, kSlot, [&p](absl::StatusOr<HostChunk> c) { p.set_value(std::move(c)); });
  auto next = p.get_future().get();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(std::string(next->data, next->size), src.substr(3 * kSlot, kSlot));
  next = absl::StatusOr<HostChunk>();
  reader.reset();
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 8);
}

TEST(DeviceTransferTest, DisconnectMidFetchReturnsEverySlot) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 8);
  const std::string src = Pattern(50 * kSlot, 9);
  for (int round = 0; round < 5; ++round) {
    device.SetPaused(false);
    auto reader = NewDeviceReader(ring, &device, src.data(), src.size(), nullptr, 8, nullptr);
    std::vector<HostChunk> held;
    ReadAll(reader.get(), 2 * kSlot + 17, kSlot / 2, 2, &held);
    device.SetPaused(true);  // copies in flight when the client goes away
    // The client goes away: a pending read is abandoned and the reader dropped.
    reader->Read(2 * kSlot + 17, kSlot, [](absl::StatusOr<HostChunk>) {});
    reader.reset();
    held.clear();
    device.SetPaused(false);
    device.Drain();
    EXPECT_EQ(ring->free_slots(), ring->slot_count()) << round;
  }
}

TEST(DeviceTransferTest, ConcurrentFetchesAllCompleteAndNoneStarves) {
  FakeCopyDevice device(/*streams=*/4, /*seed=*/11);
  auto ring = MakeRing(&device, 6, /*cap=*/3);
  const std::string huge = Pattern(200 * kSlot, 13);
  std::vector<std::string> small;
  for (int i = 0; i < 8; ++i) small.push_back(Pattern((i + 1) * kSlot + i, 100 + i));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    auto r = NewDeviceReader(ring, &device, huge.data(), huge.size(), nullptr, 8, nullptr);
    if (ReadAll(r.get(), huge.size(), kSlot, 0) == huge) ++ok;
  });
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = NewDeviceReader(ring, &device, small[i].data(), small[i].size(), nullptr, 8, nullptr);
      if (ReadAll(r.get(), small[i].size(), kSlot / 2, 0) == small[i]) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 9);
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 6);
}

}  // namespace
}  // namespace npystream
