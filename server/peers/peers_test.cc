#include "server/peers/peers.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace npystream::peers {
namespace {

class CountingMetrics : public ForwardMetrics {
 public:
  void Forwarded(absl::string_view method, int code) override {
    seen.emplace_back(std::string(method), code);
  }
  std::vector<std::pair<std::string, int>> seen;
};

std::unique_ptr<Peers> MakePeers(ForwardMetrics* metrics = nullptr) {
  Peers::Options options;
  options.replica = "b";
  options.address_template = "{replica}.npystream-peers.ns.svc:50051";
  options.metrics = metrics;
  auto peers = Peers::Create(options);
  EXPECT_TRUE(peers.ok()) << peers.status();
  return *std::move(peers);
}

TEST(PeersTest, CreateNeedsThePlaceholderAndAReplicaId) {
  Peers::Options options;
  options.replica = "b";
  options.address_template = "peers:50051";
  EXPECT_EQ(Peers::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.address_template = "{replica}:50051";
  options.replica = "";
  EXPECT_EQ(Peers::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PeersTest, OnlyAnotherReplicasHandlesAreRelayed) {
  auto peers = MakePeers();
  EXPECT_EQ(peers->OwnerElsewhere("h1f3~a"), "a");
  EXPECT_EQ(peers->OwnerElsewhere("x~y~npy-2.pod_3"), "npy-2.pod_3");  // the last '~'
  EXPECT_EQ(peers->OwnerElsewhere("h1f3~b"), "");                      // this replica's
  EXPECT_EQ(peers->OwnerElsewhere("logits"), "");                      // named by a user
  EXPECT_EQ(peers->OwnerElsewhere("h~"), "");
  // Never a host of the caller's choosing: only replica-id characters.
  EXPECT_EQ(peers->OwnerElsewhere("h~evil.example:80/x"), "");
  EXPECT_EQ(peers->OwnerElsewhere("h~a@evil"), "");
  EXPECT_EQ(peers->OwnerElsewhere("h~" + std::string(64, 'a')), "");
}

TEST(PeersTest, AddressOfFillsTheTemplate) {
  auto peers = MakePeers();
  EXPECT_EQ(peers->AddressOf("npy-0"), "npy-0.npystream-peers.ns.svc:50051");
}

TEST(PeersTest, FinishNamesAnUnreachableOwnerAndCounts) {
  CountingMetrics metrics;
  auto peers = MakePeers(&metrics);
  Peers::Call call;
  call.method = "Fetch";
  call.owner = "c";
  call.address = peers->AddressOf("c");
  grpc::Status down(grpc::StatusCode::UNAVAILABLE, "failed to connect to all addresses");
  grpc::Status unreachable = peers->Finish(call, down, /*answered=*/false);
  EXPECT_EQ(unreachable.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(unreachable.error_message(),
            "replica 'c' (address c.npystream-peers.ns.svc:50051) unreachable: failed to connect "
            "to all addresses");
  // The owner's own answer passes unchanged, UNAVAILABLE included.
  grpc::Status draining(grpc::StatusCode::UNAVAILABLE, "draining");
  EXPECT_EQ(peers->Finish(call, draining, /*answered=*/true).error_message(), "draining");
  grpc::Status missing(grpc::StatusCode::NOT_FOUND, "no tensor with handle 'h~c'");
  EXPECT_EQ(peers->Finish(call, missing, /*answered=*/false).error_message(),
            "no tensor with handle 'h~c'");
  ASSERT_EQ(metrics.seen.size(), 3u);
  EXPECT_EQ(metrics.seen[0], std::make_pair(std::string("Fetch"), 14));
  EXPECT_EQ(metrics.seen[2].second, 5);
}

TEST(PeersTest, AtMostKMaxChannelsStayOpen) {
  auto peers = MakePeers();
  grpc::CallbackServerContext context;
  for (int i = 0; i <= Peers::kMaxChannels; ++i) {
    auto call = peers->Open(context, "Stat", "r" + std::to_string(i));
    ASSERT_TRUE(call.ok()) << call.status();
    EXPECT_EQ(call->address, "r" + std::to_string(i) + ".npystream-peers.ns.svc:50051");
  }
  EXPECT_EQ(peers->open_channels(), Peers::kMaxChannels);
  // The same owner reuses its channel.
  auto first = peers->Open(context, "Stat", "r64");
  auto again = peers->Open(context, "Stat", "r64");
  EXPECT_EQ(first->stub, again->stub);
}

}  // namespace
}  // namespace npystream::peers
