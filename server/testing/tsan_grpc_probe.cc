// For tsan_shims_test, in a TSan build that links the gRPC shim: a real gRPC
// server on port 0 and concurrent clients. A client-streaming reactor keeps
// state across its callbacks, which gRPC runs on whichever of its threads
// completes each read: its reads append to a member, OnDone reads it.
//   tsan_grpc_probe ordered  gRPC orders those accesses: no report (exit 0).
//   tsan_grpc_probe racy     the reactors also bump an unguarded global
//                            from concurrent calls: a report (exit 66).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "npystream/v1/tensors.grpc.pb.h"

namespace {

bool racy_mode = false;
int unguarded = 0;               // bumped by concurrent handlers in racy mode
std::atomic<int> done_calls{0};  // counted in OnDone

constexpr int kParts = 32;  // data messages per call

class Reactor : public grpc::ServerReadReactor<npystream::v1::PutRequest> {
 public:
  explicit Reactor(npystream::v1::TensorInfo* info) : info_(info) { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (ok) {  // on the thread that completed this read
      received_ += request_.data();
      if (racy_mode) ++unguarded;
      StartRead(&request_);
      return;
    }
    info_->set_nbytes(received_.size());
    Finish(grpc::Status::OK);
  }
  void OnDone() override {
    // On the thread gRPC runs OnDone on, ordered after every read by gRPC.
    if (received_.size() != kParts * 1024u) std::abort();
    done_calls.fetch_add(1);
    delete this;
  }

 private:
  npystream::v1::TensorInfo* info_;
  npystream::v1::PutRequest request_;
  std::string received_;
};

class Service : public npystream::v1::Tensors::CallbackService {
  grpc::ServerReadReactor<npystream::v1::PutRequest>* Put(
      grpc::CallbackServerContext*, npystream::v1::TensorInfo* info) override {
    return new Reactor(info);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || (std::strcmp(argv[1], "ordered") != 0 && std::strcmp(argv[1], "racy") != 0)) {
    std::fprintf(stderr, "usage: tsan_grpc_probe ordered|racy\n");
    return 2;
  }
  racy_mode = std::strcmp(argv[1], "racy") == 0;
  Service service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return 3;
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  constexpr int kThreads = 4, kCalls = 25;
  std::vector<std::thread> clients;
  std::atomic<int> failed{0};
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      auto stub = npystream::v1::Tensors::NewStub(channel);
      for (int i = 0; i < kCalls; ++i) {
        grpc::ClientContext context;
        npystream::v1::TensorInfo info;
        auto writer = stub->Put(&context, &info);
        npystream::v1::PutRequest part;
        part.set_data(std::string(1024, static_cast<char>('a' + t)));
        for (int p = 0; p < kParts; ++p) writer->Write(part);
        writer->WritesDone();
        if (!writer->Finish().ok() || info.nbytes() != kParts * 1024u) ++failed;
      }
    });
  }
  for (std::thread& c : clients) c.join();
  server->Shutdown();
  server->Wait();
  std::printf("calls %d failed %d done %d\n", kThreads * kCalls, failed.load(), done_calls.load());
  return failed.load() == 0 && done_calls.load() == kThreads * kCalls ? 0 : 4;
}
