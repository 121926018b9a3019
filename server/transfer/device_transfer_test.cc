#include "server/transfer/device_transfer.h"

#include <atomic>
#include <future>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "server/testing/fake_copy_device.h"
#include "server/testing/transfer_testing.h"
#include "server/transfer/device_reader.h"
#include "server/transfer/device_writer.h"

namespace npystream {
namespace {

using testing::ReadAll;
using testing::WriteAll;

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
      auto r =
          NewDeviceReader(ring, &device, small[i].data(), small[i].size(), nullptr, 8, nullptr);
      if (ReadAll(r.get(), small[i].size(), kSlot / 2, 0) == small[i]) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 9);
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 6);
}

class CountingMetrics : public TransferMetrics {
 public:
  void D2HBytes(uint64_t n) override { d2h += n; }
  void H2DBytes(uint64_t n) override { h2d += n; }
  std::atomic<uint64_t> d2h{0}, h2d{0};
};

TEST(DeviceWriterTest, PutBytesLandInOrderDespiteOutOfOrderCopies) {
  FakeCopyDevice device(/*streams=*/4, /*seed=*/17);
  auto ring = MakeRing(&device, 8);
  CountingMetrics metrics;
  uint64_t total = 0;
  for (size_t n : {size_t{1}, kSlot - 1, kSlot, 10 * kSlot + 123, 37 * kSlot}) {
    const std::string src = Pattern(n, static_cast<unsigned>(n) + 1);
    for (size_t piece : {size_t{4093}, kSlot / 3, kSlot, 3 * kSlot + 5}) {
      std::string dst(n, '\0');
      auto writer = NewDeviceWriter(ring, &device, dst.data(), n, nullptr, &metrics);
      ASSERT_TRUE(WriteAll(writer.get(), src, piece).ok()) << n << " " << piece;
      EXPECT_TRUE(dst == src) << n << " " << piece;
      total += n;
    }
  }
  EXPECT_EQ(metrics.h2d.load(), total);
  EXPECT_EQ(metrics.d2h.load(), 0u);
  device.Drain();
  EXPECT_EQ(ring->free_slots(), ring->slot_count());
  EXPECT_EQ(device.pinned_bytes(), static_cast<int64_t>(8 * kSlot));  // only the ring
}

TEST(DeviceWriterTest, BackpressureHoldsTheReaderWhileTheRingIsFull) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 8, /*cap=*/3);
  const std::string src = Pattern(10 * kSlot, 21);
  std::string dst(src.size(), '\0');
  auto writer = NewDeviceWriter(ring, &device, dst.data(), dst.size(), nullptr, nullptr);
  device.SetPaused(true);  // no copy completes, so no slot comes back
  auto first = std::make_shared<std::string>(src.substr(0, 5 * kSlot));
  writer->Write(HostChunk{first->data(), first->size(), first});
  std::atomic<bool> writable{false};
  writer->WhenWritable([&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    writable = true;
  });
  // Three slots (the cap) are filled and copying; the rest waits in the
  // backlog, and the Put must not read more.
  EXPECT_FALSE(writable.load());
  EXPECT_EQ(ring->free_slots(), 5);
  EXPECT_EQ(device.copies_started(), 3);
  first.reset();  // the writer still holds the unstaged bytes
  device.SetPaused(false);
  for (int i = 0; i < 500 && !writable.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(writable.load());
  auto rest = std::make_shared<std::string>(src.substr(5 * kSlot));
  writer->Write(HostChunk{rest->data(), rest->size(), rest});
  std::promise<absl::Status> flushed;
  writer->Flush([&flushed](absl::Status s) { flushed.set_value(s); });
  ASSERT_TRUE(flushed.get_future().get().ok());
  EXPECT_TRUE(dst == src);
  EXPECT_EQ(device.copies_started(), 10);
  writer.reset();
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 8);
}

TEST(DeviceWriterTest, AbandonedPutReturnsEverySlotAndThenItsDestination) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 8);
  const std::string src = Pattern(20 * kSlot, 23);
  for (int round = 0; round < 4; ++round) {
    auto dst = std::make_shared<std::string>(src.size(), '\0');
    std::weak_ptr<std::string> watch = dst;
    auto writer = NewDeviceWriter(ring, &device, dst->data(), dst->size(), dst, nullptr);
    dst.reset();  // the writer's keepalive is the destination's only owner
    device.SetPaused(true);
    auto owned = std::make_shared<std::string>(src.substr(0, 7 * kSlot + 99));
    writer->Write(HostChunk{owned->data(), owned->size(), owned});
    writer->WhenWritable([](absl::Status) {});
    owned.reset();
    writer.reset();  // the client went away with copies in flight
    EXPECT_FALSE(watch.expired()) << "freed under a copy in flight";
    device.SetPaused(false);
    device.Drain();
    EXPECT_TRUE(watch.expired()) << round;
    EXPECT_EQ(ring->free_slots(), ring->slot_count()) << round;
  }
}

TEST(DeviceWriterTest, CopyFailureAndOverrunAreErrors) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 8);
  const std::string src = Pattern(4 * kSlot, 29);
  std::string dst(src.size(), '\0');
  device.SetFailing(true);
  auto writer = NewDeviceWriter(ring, &device, dst.data(), dst.size(), nullptr, nullptr);
  absl::Status s = WriteAll(writer.get(), src, kSlot);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  device.SetFailing(false);
  writer.reset();
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 8);

  writer = NewDeviceWriter(ring, &device, dst.data(), kSlot, nullptr, nullptr);
  s = WriteAll(writer.get(), src.substr(0, kSlot + 1), 2 * kSlot);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  writer.reset();
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 8);
}

TEST(DeviceWriterTest, ShortPayloadFlushesItsPartialSlot) {
  FakeCopyDevice device;
  auto ring = MakeRing(&device, 4);
  const std::string src = Pattern(2 * kSlot + 10, 31);
  std::string dst(3 * kSlot, 'x');
  auto writer = NewDeviceWriter(ring, &device, dst.data(), dst.size(), nullptr, nullptr);
  ASSERT_TRUE(WriteAll(writer.get(), src, 1000).ok());
  EXPECT_TRUE(dst.substr(0, src.size()) == src);
  EXPECT_EQ(dst.substr(src.size()), std::string(dst.size() - src.size(), 'x'));
}

TEST(DeviceWriterTest, PutsAndFetchesShareTheRingAndAllComplete) {
  FakeCopyDevice device(/*streams=*/4, /*seed=*/37);
  auto ring = MakeRing(&device, 6, /*cap=*/3);
  std::vector<std::string> srcs, dsts;
  for (int i = 0; i < 6; ++i) {
    srcs.push_back(Pattern((5 + 7 * i) * kSlot + 3 * i, 200 + i));
    dsts.emplace_back(srcs.back().size(), '\0');
  }
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      if (i % 2 == 0) {
        auto w = NewDeviceWriter(ring, &device, dsts[i].data(), dsts[i].size(), nullptr, nullptr);
        if (WriteAll(w.get(), srcs[i], kSlot / 2 + 1).ok() && dsts[i] == srcs[i]) ++ok;
      } else {
        auto r =
            NewDeviceReader(ring, &device, srcs[i].data(), srcs[i].size(), nullptr, 8, nullptr);
        if (ReadAll(r.get(), srcs[i].size(), kSlot, 1) == srcs[i]) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  device.Drain();
  EXPECT_EQ(ring->free_slots(), 6);
}

}  // namespace
}  // namespace npystream
