// Test-only: reference .npy files written by numpy itself (make_npy_cases.py).
#ifndef NPYSTREAM_SERVER_TESTING_NUMPY_CASES_TESTING_H_
#define NPYSTREAM_SERVER_TESTING_NUMPY_CASES_TESTING_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/testing/build_dirs.h"

namespace npystream::npy::testing {

// Runs the generator once per process into a fresh temporary folder and
// returns that folder; the manifest is `dir + "/manifest.json"`.
inline const std::string& NumpyCasesDir() {
  static const std::string* dir = [] {
    char tmpl[] = "/tmp/npystream-npy-XXXXXX";
    std::string d = mkdtemp(tmpl);
    std::string cmd = std::string("/usr/bin/python3 ") + ::npystream::testing::SourceDir() +
                      "/server/npy/testdata/make_npy_cases.py " + d;
    if (std::system(cmd.c_str()) != 0) {
      ADD_FAILURE() << "could not generate numpy reference files: " << cmd;
    }
    return new std::string(d);
  }();
  return *dir;
}

// The file's bytes; a test case that cannot be read is a broken checkout.
inline std::string ReadFile(const std::string& path) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) {
    std::fprintf(stderr, "%s\n", std::string(bytes.status().message()).c_str());
    std::abort();
  }
  return *std::move(bytes);
}

inline nlohmann::json NumpyManifest() {
  return nlohmann::json::parse(ReadFile(NumpyCasesDir() + "/manifest.json"));
}

}  // namespace npystream::npy::testing

#endif  // NPYSTREAM_SERVER_TESTING_NUMPY_CASES_TESTING_H_
