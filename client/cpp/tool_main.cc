// npystream: command-line client.
//   npystream [--target HOST:PORT] [--token T] [--tls-ca PEM]
//             put FILE.npy [--name N] [--device D] [--ttl S]
//           | fetch HANDLE [-o FILE] | bench-fetch HANDLE [--repeat N]
//           | stat HANDLE | ls | rm HANDLE...
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "base/file_util.h"
#include "base/process_tuning.h"
#include "client/cpp/npystream_client.h"

namespace {

void PrintInfo(const npystream::v1::TensorInfo& info) {
  std::string shape;
  for (int i = 0; i < info.shape_size(); ++i) {
    shape += (i ? "x" : "") + std::to_string(info.shape(i));
  }
  std::cout << info.handle() << "\t" << info.dtype() << "\t" << (shape.empty() ? "scalar" : shape)
            << "\t" << info.nbytes() << "\t" << info.device() << "\n";
}

int Usage() {
  std::cerr << "usage: npystream [--target HOST:PORT] [--token T] [--tls-ca PEM] COMMAND\n"
               "  put FILE.npy [--name N] [--device D] [--ttl S]\n"
               "  fetch HANDLE [-o FILE]\n"
               "  bench-fetch HANDLE [--repeat N]   fetch into memory, print MB/s\n"
               "  stat HANDLE | ls | rm HANDLE...\n";
  return 2;
}

int Fail(const absl::Status& s) {
  std::cerr << "npystream: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  npystream::TuneProcessForStreaming();
  npystream::ClientOptions options;
  if (const char* t = std::getenv("NPYSTREAM_TARGET")) options.target = t;
  if (const char* t = std::getenv("NPYSTREAM_TOKEN")) options.token = t;
  std::vector<std::string> args;
  npystream::PutOptions put;
  std::string output;
  int repeat = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "npystream: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--target")
      options.target = value();
    else if (a == "--token")
      options.token = value();
    else if (a == "--tls-ca") {
      auto pem = npystream::ReadFileToString(value());
      if (!pem.ok()) {
        std::cerr << "npystream: --tls-ca: " << pem.status().message() << "\n";
        std::exit(2);
      }
      options.tls_root_pem = *std::move(pem);
    } else if (a == "--name")
      put.name = value();
    else if (a == "--device")
      put.device = value();
    else if (a == "--ttl")
      put.ttl_seconds = std::stoul(value());
    else if (a == "-o" || a == "--output")
      output = value();
    else if (a == "--repeat")
      repeat = std::stoi(value());
    else if (a == "-h" || a == "--help")
      return Usage();
    else
      args.push_back(a);
  }
  if (args.empty()) return Usage();
  auto client = npystream::Client::Connect(options);
  if (!client.ok()) return Fail(client.status());
  const std::string& cmd = args[0];
  if (cmd == "put" && args.size() == 2) {
    auto info = (*client)->PutFile(args[1], put);
    if (!info.ok()) return Fail(info.status());
    PrintInfo(*info);
  } else if (cmd == "fetch" && args.size() == 2) {
    if (output.empty()) output = args[1] + ".npy";
    auto info = (*client)->FetchToFile(args[1], output);
    if (!info.ok()) return Fail(info.status());
    std::cout << output << "\t" << info->npy_bytes() << "\n";
  } else if (cmd == "bench-fetch" && args.size() == 2) {
    std::vector<char> buffer;
    for (int r = 0; r < repeat; ++r) {
      const auto start = std::chrono::steady_clock::now();
      auto info = (*client)->FetchToBuffer(args[1], &buffer);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!info.ok()) return Fail(info.status());
      std::cout << "bytes=" << info->npy_bytes() << " seconds=" << s
                << " MBps=" << info->npy_bytes() / s / 1e6 << "\n";
    }
  } else if (cmd == "stat" && args.size() == 2) {
    auto info = (*client)->Stat(args[1]);
    if (!info.ok()) return Fail(info.status());
    PrintInfo(*info);
  } else if (cmd == "ls" && args.size() == 1) {
    auto list = (*client)->List();
    if (!list.ok()) return Fail(list.status());
    for (const auto& info : *list) PrintInfo(info);
  } else if (cmd == "rm" && args.size() >= 2) {
    for (size_t i = 1; i < args.size(); ++i) {
      absl::Status s = (*client)->Release(args[i]);
      if (!s.ok()) return Fail(s);
      std::cout << "released " << args[i] << "\n";
    }
  } else {
    return Usage();
  }
  return 0;
}
