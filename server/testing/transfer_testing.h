// Test helpers that drive a PayloadReader or PayloadWriter to the end the way
// the RPC layer does, for the transfer tests (fake and CUDA devices).
#ifndef NPYSTREAM_SERVER_TESTING_TRANSFER_TESTING_H_
#define NPYSTREAM_SERVER_TESTING_TRANSFER_TESTING_H_

#include <algorithm>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/transfer/transfer.h"

namespace npystream::testing {

// Reads the whole payload in `piece`-byte requests, keeping the last `hold`
// chunks alive (as gRPC does with slices it has not yet written), like a
// fetch. `hold` must stay under the ring's per-fetch cap: a consumer that
// holds its whole cap while asking for more waits forever by design.
inline std::string ReadAll(PayloadReader* reader, uint64_t nbytes, size_t piece, size_t hold,
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

// Writes `src` in `piece`-byte chunks as a Put does: each chunk owned by a
// shared buffer, the next written only once the writer is writable, then a
// Flush. Returns the Flush status.
inline absl::Status WriteAll(PayloadWriter* writer, const std::string& src, size_t piece) {
  for (size_t at = 0; at < src.size(); at += piece) {
    auto owned = std::make_shared<std::string>(src.substr(at, piece));
    writer->Write(HostChunk{owned->data(), owned->size(), owned});
    std::promise<absl::Status> writable;
    writer->WhenWritable([&writable](absl::Status s) { writable.set_value(s); });
    absl::Status s = writable.get_future().get();
    if (!s.ok()) return s;
  }
  std::promise<absl::Status> flushed;
  writer->Flush([&flushed](absl::Status s) { flushed.set_value(s); });
  return flushed.get_future().get();
}

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_TRANSFER_TESTING_H_
