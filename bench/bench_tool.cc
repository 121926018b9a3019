// npystream_bench: the C++ side of `make bench`.
//   memcpy BYTES                          single-thread memcpy GB/s
//   raw-server MAX_BYTES                  gRPC generic server: /bench.Raw/Stream sends the
//                                         byte count asked for (decimal request) as
//                                         pre-built 1 MiB slices; /bench.Raw/Echo echoes
//   raw-stream TARGET BYTES REPEAT        client of Stream, copies into one buffer
//   raw-echo TARGET SIZE REPEAT           unary-style echo latency
//   fetch TARGET HANDLE REPEAT THREADS    npystream C++ client fetch into a buffer,
//                                         with time to the first payload byte
//   put TARGET BYTES REPEAT               npystream C++ client Put from memory
//   stat TARGET HANDLE REPEAT             unary Stat latency
//   d2h BYTES                             GPU: ring vs one cudaMemcpy vs pageable
//   infer-load TARGET MODEL NPY CLIENTS SECONDS
//   oip-load TARGET MODEL RAW_FILE SHAPE CLIENTS SECONDS   (FP32, SHAPE "64,1,28,28")
//                                         CLIENTS threads, a connection each, Infer
//                                         the .npy file NPY (inline in, inline out)
//                                         in a loop: requests/s and latency
// Each client prints one JSON line.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "base/file_util.h"
#include "base/process_tuning.h"
#include "client/cpp/npystream_client.h"
#include "inference/grpc_service.grpc.pb.h"
#include "npystream/v1/inference.grpc.pb.h"
#include "proto/wire/channel_args.h"

#ifdef NPYSTREAM_WITH_CUDA
#include <cuda_runtime_api.h>

#include <future>

#include "server/transfer/cuda_probe.h"
#include "server/transfer/device_reader.h"
#include "server/transfer/device_transfer.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string Stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))]; };
  char buf[256];
  snprintf(buf, sizeof(buf),
           "\"min\": %.6g, \"median\": %.6g, \"p50\": %.6g, \"p99\": %.6g, \"n\": %zu", v.front(),
           pct(0.5), pct(0.5), pct(0.99), v.size());
  return buf;
}

int Memcpy(size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 0);
  std::vector<double> rates;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    rates.push_back(bytes / Seconds(t0, Clock::now()));
    a[i] = b[bytes - 1 - i];  // keep the copies observable
  }
  std::cout << "{\"case\": \"memcpy\", \"bytes\": " << bytes
            << ", \"Bps_max\": " << *std::max_element(rates.begin(), rates.end()) << "}"
            << std::endl;
  return 0;
}

class RawService : public grpc::CallbackGenericService {
 public:
  explicit RawService(size_t bytes) : data_(bytes, 'x') {
    for (size_t off = 0; off < bytes; off += kPiece) {
      slices_.emplace_back(data_.data() + off, std::min(kPiece, bytes - off),
                           grpc::Slice::STATIC_SLICE);
    }
  }
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(this, ctx->method() == "/bench.Raw/Echo");
  }

 private:
  static constexpr size_t kPiece = 1 << 20;
  class Reactor : public grpc::ServerGenericBidiReactor {
   public:
    Reactor(RawService* s, bool echo) : s_(s), echo_(echo) { StartRead(&req_); }
    void OnReadDone(bool ok) override {
      if (!ok) return Finish(grpc::Status::OK);
      if (echo_) {
        StartWriteAndFinish(&req_, grpc::WriteOptions(), grpc::Status::OK);
      } else {
        grpc::Slice flat;
        req_.DumpToSingleSlice(&flat);
        left_ = std::stoull(std::string(reinterpret_cast<const char*>(flat.begin()), flat.size()));
        Next();
      }
    }
    void OnWriteDone(bool ok) override {
      if (echo_) return;  // StartWriteAndFinish finishes the call
      if (!ok) return Finish(grpc::Status::OK);
      Next();
    }
    void OnDone() override { delete this; }

   private:
    void Next() {
      if (left_ == 0 || i_ >= s_->slices_.size()) return Finish(grpc::Status::OK);
      grpc::Slice piece = s_->slices_[i_++];
      if (piece.size() > left_) piece = piece.sub(0, left_);
      left_ -= piece.size();
      out_ = grpc::ByteBuffer(&piece, 1);
      StartWrite(&out_);
    }
    RawService* s_;
    bool echo_;
    size_t i_ = 0;
    size_t left_ = 0;
    grpc::ByteBuffer req_, out_;
  };
  std::string data_;
  std::vector<grpc::Slice> slices_;
};

int RawServer(size_t bytes) {
  RawService service(bytes);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  auto server = builder.BuildAndStart();
  std::cout << "port " << port << std::endl;
  server->Wait();
  return 0;
}

bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got;
  bool ok;
  return cq->Next(&got, &ok) && got == tag && ok;
}

// One generic call: sends `request`, hands every response to `sink`.
template <typename Sink>
bool GenericCall(grpc::GenericStub* stub, const std::string& method, const std::string& request,
                 Sink&& sink) {
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  auto call = stub->PrepareCall(&ctx, method, &cq);
  int tag;
  call->StartCall(&tag);
  bool ok = Await(&cq, &tag);
  grpc::Slice s(request);
  grpc::ByteBuffer out(&s, 1);
  if (ok) {
    call->WriteLast(out, grpc::WriteOptions(), &tag);
    ok = Await(&cq, &tag);
  }
  grpc::ByteBuffer in;
  while (ok) {
    call->Read(&in, &tag);
    if (!Await(&cq, &tag)) break;
    sink(in);
  }
  grpc::Status status;
  call->Finish(&status, &tag);
  Await(&cq, &tag);
  cq.Shutdown();
  void* t;
  bool o;
  while (cq.Next(&t, &o)) {
  }
  return status.ok();
}

std::shared_ptr<grpc::Channel> Channel(const std::string& target) {
  // The same flow-control window the npystream clients use, so the raw
  // stream stays the best case for this transport.
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   npystream::wire::StreamingChannelArguments());
}

int RawStream(const std::string& target, size_t bytes, int repeat) {
  auto channel = Channel(target);
  grpc::GenericStub stub(channel);
  std::vector<char> buffer(bytes);
  std::vector<double> secs;
  for (int r = 0; r < repeat; ++r) {
    size_t pos = 0;
    auto t0 = Clock::now();
    GenericCall(&stub, "/bench.Raw/Stream", std::to_string(bytes), [&](const grpc::ByteBuffer& bb) {
      std::vector<grpc::Slice> slices;
      bb.Dump(&slices);
      for (auto& s : slices) {
        std::memcpy(buffer.data() + pos, s.begin(), std::min(s.size(), bytes - pos));
        pos += s.size();
      }
    });
    secs.push_back(Seconds(t0, Clock::now()));
    if (pos != bytes) return 1;
  }
  std::cout << "{\"case\": \"raw-stream\", \"bytes\": " << bytes << ", " << Stats(secs) << "}"
            << std::endl;
  return 0;
}

int RawEcho(const std::string& target, size_t size, int repeat) {
  auto channel = Channel(target);
  grpc::GenericStub stub(channel);
  const std::string payload(size, 'e');
  std::vector<double> secs;
  for (int r = 0; r < repeat + 50; ++r) {
    size_t got = 0;
    auto t0 = Clock::now();
    GenericCall(&stub, "/bench.Raw/Echo", payload,
                [&](const grpc::ByteBuffer& bb) { got += bb.Length(); });
    if (r >= 50) secs.push_back(Seconds(t0, Clock::now()));  // after warm-up
    if (got != size) return 1;
  }
  std::cout << "{\"case\": \"raw-echo\", \"bytes\": " << size << ", " << Stats(secs) << "}"
            << std::endl;
  return 0;
}

// Each of `threads` clients connects and fetches once untimed (a warm
// channel and buffer, as a long-lived client has), then all start together
// and fetch `repeat` times; aggregate throughput is over that timed phase.
int Fetch(const std::string& target, const std::string& handle, int repeat, int threads) {
  npystream::ClientOptions options;
  options.target = target;
  std::mutex mu;
  std::condition_variable cv;
  int warmed = 0;
  bool go = false;
  std::vector<double> secs, first_byte;
  uint64_t bytes = 0;
  const int warm = threads == 1 && repeat > 20 ? 50 : 1;
  Clock::time_point t_all;
  std::vector<std::thread> pool;
  bool failed = false;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      auto client = *npystream::Client::Connect(options);
      std::vector<char> buffer;
      for (int r = 0; r < repeat + warm; ++r) {
        if (r == warm) {  // the barrier between warm-up and the timed phase
          std::unique_lock<std::mutex> lock(mu);
          if (++warmed == threads) {
            go = true;
            t_all = Clock::now();
            cv.notify_all();
          }
          cv.wait(lock, [&] { return go; });
        }
        // As FetchToBuffer, also timing the first payload byte's arrival.
        auto t0 = Clock::now();
        double ttfb = -1;
        size_t pos = 0, header = 0;
        auto info = client->Fetch(
            handle,
            [&](const npystream::v1::TensorInfo& i) {
              buffer.resize(i.npy_bytes());
              header = i.npy_bytes() - i.nbytes();
            },
            [&](const char* p, size_t n) {
              if (ttfb < 0 && pos + n > header) ttfb = Seconds(t0, Clock::now());
              if (pos + n <= buffer.size()) std::memcpy(buffer.data() + pos, p, n);
              pos += n;
            });
        const double s = Seconds(t0, Clock::now());
        std::lock_guard<std::mutex> lock(mu);
        if (!info.ok()) {
          std::cerr << info.status() << "\n";
          failed = true;
          std::exit(1);  // the others would wait at the barrier forever
        }
        if (r >= warm) {
          secs.push_back(s);
          if (ttfb >= 0) first_byte.push_back(ttfb);
          bytes += info->npy_bytes();
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  if (failed) return 1;
  const double wall = Seconds(t_all, Clock::now());
  std::cout << "{\"case\": \"cpp-fetch\", \"threads\": " << threads
            << ", \"bytes\": " << bytes / secs.size() << ", \"aggregate_Bps\": " << bytes / wall
            << ", " << Stats(secs);
  if (!first_byte.empty()) std::cout << ", \"first_byte\": {" << Stats(first_byte) << "}";
  std::cout << "}" << std::endl;
  return 0;
}

// C++ client Put of a float32 .npy of BYTES held in memory, REPEAT times
// (each under a fresh name, released after).
int Put(const std::string& target, size_t bytes, int repeat) {
  npystream::ClientOptions options;
  options.target = target;
  auto client = *npystream::Client::Connect(options);
  char header[128];
  const int hlen =
      std::snprintf(header, sizeof(header),
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", bytes / 4);
  std::string dict(header, hlen);
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string npy("\x93NUMPY\x01\x00", 8);
  npy += static_cast<char>(dict.size() & 0xff);
  npy += static_cast<char>(dict.size() >> 8);
  npy += dict;
  npy.append(bytes, '\x01');
  std::vector<double> secs;
  for (int r = 0; r < repeat + 1; ++r) {
    npystream::PutOptions put;
    put.name = "bench_put_" + std::to_string(r);
    put.device = "cpu";
    auto t0 = Clock::now();
    auto info = client->PutBytes(npy, put);
    const double s = Seconds(t0, Clock::now());
    if (!info.ok()) {
      std::cerr << info.status() << "\n";
      return 1;
    }
    if (r > 0) secs.push_back(s);  // the first warms the channel
    if (!client->Release(put.name).ok()) return 1;
  }
  std::cout << "{\"case\": \"cpp-put\", \"bytes\": " << npy.size() << ", " << Stats(secs) << "}"
            << std::endl;
  return 0;
}

// Unary Stat latency: the per-call cost of npystreamd's call path without a
// stream (compare with raw-echo and a small fetch).
int StatLatency(const std::string& target, const std::string& handle, int repeat) {
  npystream::ClientOptions options;
  options.target = target;
  auto client = *npystream::Client::Connect(options);
  std::vector<double> secs;
  for (int r = 0; r < repeat + 50; ++r) {
    auto t0 = Clock::now();
    auto info = client->Stat(handle);
    if (r >= 50) secs.push_back(Seconds(t0, Clock::now()));
    if (!info.ok()) return 1;
  }
  std::cout << "{\"case\": \"stat\", " << Stats(secs) << "}" << std::endl;
  return 0;
}

// `clients` threads each calling `call(client)` back to back for `seconds`;
// prints one JSON line: requests a second, errors and latency stats.
int RunLoad(const char* name, int clients, double seconds,
            const std::function<bool(int client)>& call) {
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        if (!call(i)) ++errors;
        latencies[i].push_back(Seconds(t0, Clock::now()));
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = Seconds(start, Clock::now());
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::cout << "{\"case\": \"" << name << "\", \"clients\": " << clients
            << ", \"rps\": " << all.size() / elapsed << ", \"errors\": " << errors.load() << ", "
            << Stats(all) << "}" << std::endl;
  return errors.load() == 0 ? 0 : 1;
}

int InferLoad(const std::string& target, const std::string& model, const std::string& npy_path,
              int clients, double seconds) {
  auto npy = npystream::ReadFileToString(npy_path);
  if (!npy.ok()) {
    std::cerr << npy.status().message() << "\n";
    return 2;
  }
  npystream::v1::InferRequest request;
  request.set_model(model);
  request.add_inputs()->set_npy(*npy);
  request.set_inline_max_bytes(1 << 20);
  std::vector<std::unique_ptr<npystream::v1::Inference::Stub>> stubs;
  auto call = [&](int i) {
    npystream::v1::InferResponse response;
    grpc::ClientContext context;
    return stubs[i]->Infer(&context, request, &response).ok();
  };
  for (int i = 0; i < clients; ++i) {
    stubs.push_back(npystream::v1::Inference::NewStub(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), npystream::wire::StreamingChannelArguments())));
    if (!call(i)) return 1;  // warm: the channel is connected before the clock starts
  }
  return RunLoad("infer-load", clients, seconds, call);
}

// The same load through the Open Inference Protocol's ModelInfer (what
// tritonclient sends): FP32 raw_input_contents, raw outputs back.
int OipLoad(const std::string& target, const std::string& model, const std::string& raw_path,
            const std::string& shape, int clients, double seconds) {
  auto raw = npystream::ReadFileToString(raw_path);
  if (!raw.ok()) {
    std::cerr << raw.status().message() << "\n";
    return 2;
  }
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  for (absl::string_view d : absl::StrSplit(shape, ','))
    input->add_shape(std::stoll(std::string(d)));
  request.add_raw_input_contents(*raw);
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  auto call = [&](int i) {
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    return stubs[i]->ModelInfer(&context, request, &response).ok() &&
           response.raw_output_contents_size() == 1;
  };
  for (int i = 0; i < clients; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT32_MAX);  // as tritonclient sets it
    args.SetMaxSendMessageSize(INT32_MAX);
    stubs.push_back(inference::GRPCInferenceService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
    if (!call(i)) return 1;
  }
  return RunLoad("oip-load", clients, seconds, call);
}

#ifdef NPYSTREAM_WITH_CUDA
// Device-to-host copy of BYTES of GPU memory three ways: one cudaMemcpy into
// pinned memory (the physical limit), into fresh pageable memory (what
// tensor.cpu() does), and through the transfer engine's staging ring (4
// streams, 4 MiB slots, 256 MiB ring; each chunk dropped as soon as it is
// ready, as if sent at once).
int D2H(size_t bytes) {
  const npystream::CudaProbe probe = npystream::ProbeCuda();
  if (probe.device_count == 0) {
    std::cout << "{\"case\": \"d2h\", \"skipped\": \"" << probe.description << "\"}" << std::endl;
    return 0;
  }
  void* src = nullptr;
  if (cudaMalloc(&src, bytes) != cudaSuccess || cudaMemset(src, 7, bytes) != cudaSuccess) return 1;
  void* pinned = nullptr;
  if (cudaHostAlloc(&pinned, bytes, cudaHostAllocDefault) != cudaSuccess) return 1;
  std::vector<double> single, pageable, ring_secs;
  for (int r = 0; r < 4; ++r) {
    auto t0 = Clock::now();
    cudaMemcpy(pinned, src, bytes, cudaMemcpyDeviceToHost);
    if (r > 0) single.push_back(Seconds(t0, Clock::now()));
    t0 = Clock::now();
    char* fresh = static_cast<char*>(std::malloc(bytes));
    cudaMemcpy(fresh, src, bytes, cudaMemcpyDeviceToHost);
    if (r > 0) pageable.push_back(Seconds(t0, Clock::now()));
    std::free(fresh);
  }
  auto device = npystream::NewCudaCopyDevice(0, 4);
  if (!device.ok()) return 1;
  npystream::StagingRing::Options ro;
  ro.device = device->get();
  auto ring = npystream::StagingRing::Create(ro);
  if (!ring.ok()) return 1;
  for (int r = 0; r < 4; ++r) {
    auto reader = npystream::NewDeviceReader(*ring, device->get(), src, bytes, nullptr, 8, nullptr);
    auto t0 = Clock::now();
    size_t pos = 0;
    while (pos < bytes) {
      std::promise<absl::StatusOr<npystream::HostChunk>> p;
      reader->Read(pos, bytes - pos,
                   [&p](absl::StatusOr<npystream::HostChunk> c) { p.set_value(std::move(c)); });
      auto chunk = p.get_future().get();
      if (!chunk.ok()) return 1;
      pos += chunk->size;
    }
    if (r > 0) ring_secs.push_back(Seconds(t0, Clock::now()));
  }
  cudaFreeHost(pinned);
  cudaFree(src);
  std::cout << "{\"case\": \"d2h\", \"bytes\": " << bytes << ", \"device\": \"" << probe.description
            << "\", \"single_pinned\": {" << Stats(single) << "}, \"pageable\": {"
            << Stats(pageable) << "}, \"ring\": {" << Stats(ring_secs) << "}}" << std::endl;
  return 0;
}
#else
int D2H(size_t) {
  std::cout << "{\"case\": \"d2h\", \"skipped\": \"npystream_bench was built without the CUDA "
               "toolkit\"}"
            << std::endl;
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  npystream::TuneProcessForStreaming();
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 2 && a[0] == "memcpy") return Memcpy(std::stoull(a[1]));
  if (a.size() == 2 && a[0] == "raw-server") return RawServer(std::stoull(a[1]));
  if (a.size() == 4 && a[0] == "raw-stream")
    return RawStream(a[1], std::stoull(a[2]), std::stoi(a[3]));
  if (a.size() == 4 && a[0] == "raw-echo") return RawEcho(a[1], std::stoull(a[2]), std::stoi(a[3]));
  if (a.size() == 4 && a[0] == "put") return Put(a[1], std::stoull(a[2]), std::stoi(a[3]));
  if (a.size() == 4 && a[0] == "stat") return StatLatency(a[1], a[2], std::stoi(a[3]));
  if (a.size() == 2 && a[0] == "d2h") return D2H(std::stoull(a[1]));
  if (a.size() == 7 && a[0] == "oip-load") {
    return OipLoad(a[1], a[2], a[3], a[4], std::stoi(a[5]), std::stod(a[6]));
  }
  if (a.size() == 6 && a[0] == "infer-load") {
    return InferLoad(a[1], a[2], a[3], std::stoi(a[4]), std::stod(a[5]));
  }
  if (a.size() == 5 && a[0] == "fetch") return Fetch(a[1], a[2], std::stoi(a[3]), std::stoi(a[4]));
  std::cerr << "usage: see the comment at the top of bench/bench_tool.cc\n";
  return 2;
}
