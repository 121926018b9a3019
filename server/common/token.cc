#include "server/common/token.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace npystream {

bool BearerTokenMatches(absl::string_view header, absl::string_view token) {
  const std::string expected = absl::StrCat("Bearer ", token);
  // Compare every byte whatever the lengths, so timing says nothing.
  unsigned diff = header.size() == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char h = i < header.size() ? header[i] : 0;
    diff |= static_cast<unsigned char>(h ^ expected[i]);
  }
  return diff == 0;
}

}  // namespace npystream
