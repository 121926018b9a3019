// TempDir: a fresh folder for one test, removed with all it holds when the
// object goes. Header-only, so the tests of any library may use it.
#ifndef NPYSTREAM_SERVER_TESTING_TEMP_DIR_H_
#define NPYSTREAM_SERVER_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace npystream {
namespace testing {

class TempDir {
 public:
  // A new folder `parent`/`prefix`.XXXXXX ("/dev/shm" for a tmpfs, as a
  // pod's emptyDir gives). path() is empty when it could not be made.
  TempDir(const std::string& parent, const std::string& prefix) {
    std::string pattern = parent + "/" + prefix + ".XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) != nullptr) path_ = buffer.data();
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace testing
}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TESTING_TEMP_DIR_H_
