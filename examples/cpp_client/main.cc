// Puts a small .npy, fetches it back and prints what the daemon says:
//   npystream_example HOST:PORT
#include <cstdio>
#include <string>
#include <vector>

#include "client/cpp/npystream_client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
    return 2;
  }
  npystream::TuneProcessForStreaming();
  npystream::ClientOptions options;
  options.target = argv[1];
  auto client = npystream::Client::Connect(options);
  if (!client.ok()) return 1;
  // A 1-d int8 array [1, 2, 3] as numpy.save writes it.
  std::string npy("\x93NUMPY\x01\x00\x76\x00", 10);
  std::string dict = "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }";
  dict.resize(127 - 10, ' ');
  npy += dict + "\n" + std::string("\x01\x02\x03", 3);
  npystream::PutOptions put;
  put.name = "from_example";
  auto info = (*client)->PutBytes(npy, put);
  if (!info.ok()) {
    std::fprintf(stderr, "put: %s\n", std::string(info.status().message()).c_str());
    return 1;
  }
  std::vector<char> back;
  auto fetched = (*client)->FetchToBuffer("from_example", &back);
  if (!fetched.ok() || std::string(back.begin(), back.end()) != npy) return 1;
  std::printf("example: %s %s shape[0]=%lld round trip ok\n", info->handle().c_str(),
              info->dtype().c_str(), static_cast<long long>(info->shape(0)));
  return 0;
}
