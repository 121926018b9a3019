// Test-only: the build tree a test binary runs from and the source tree it
// was configured from, found at run time (the binary is <build>/bin/<name>;
// <build>/CMakeCache.txt names the sources). Not compiled in as paths, so a
// test's object file is the same in every checkout and ccache shares it.
#ifndef NPYSTREAM_SERVER_TESTING_BUILD_DIRS_H_
#define NPYSTREAM_SERVER_TESTING_BUILD_DIRS_H_

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace npystream::testing {

// The build folder (aborts when the binary is not in one: a broken build).
inline const std::string& BuildDir() {
  static const std::string* dir = [] {
    std::error_code error;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
    const std::filesystem::path build = exe.parent_path().parent_path();
    if (error || !std::filesystem::exists(build / "CMakeCache.txt")) {
      std::fprintf(stderr, "test binary %s is not in a build folder's bin/\n", exe.c_str());
      std::abort();
    }
    return new std::string(build.string());
  }();
  return *dir;
}

// The source folder the build was configured from.
inline const std::string& SourceDir() {
  static const std::string* dir = [] {
    std::ifstream cache(BuildDir() + "/CMakeCache.txt");
    const std::string key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
    for (std::string line; std::getline(cache, line);) {
      if (line.rfind(key, 0) == 0) return new std::string(line.substr(key.size()));
    }
    std::fprintf(stderr, "%s/CMakeCache.txt names no source folder\n", BuildDir().c_str());
    std::abort();
  }();
  return *dir;
}

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_BUILD_DIRS_H_
