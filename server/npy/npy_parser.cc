#include "server/npy/npy_parser.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace npystream::npy {
namespace {

absl::Status Defect(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("npy header: ", what));
}

// A cursor over the header dict text, a Python literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class DictParser {
 public:
  explicit DictParser(absl::string_view text, const ParseLimits& limits)
      : text_(text), limits_(limits) {}

  absl::StatusOr<ArrayMeta> Parse() {
    SkipSpace();
    RETURN_IF_ERROR(Expect('{'));
    std::optional<std::string> descr;
    std::optional<bool> fortran;
    std::optional<std::vector<int64_t>> shape;
    SkipSpace();
    while (!AtEnd() && Peek() != '}') {
      ASSIGN_OR_RETURN(std::string key, ParseString("key"));
      SkipSpace();
      RETURN_IF_ERROR(Expect(':'));
      SkipSpace();
      if (key == "descr") {
        if (descr) return Defect("duplicate key 'descr'");
        if (!AtEnd() && (Peek() == '[' || Peek() == '{')) {
          return Defect("structured dtypes are not supported");
        }
        ASSIGN_OR_RETURN(descr, ParseString("'descr' value"));
      } else if (key == "fortran_order") {
        if (fortran) return Defect("duplicate key 'fortran_order'");
        ASSIGN_OR_RETURN(fortran, ParseBool());
      } else if (key == "shape") {
        if (shape) return Defect("duplicate key 'shape'");
        ASSIGN_OR_RETURN(shape, ParseShape());
      } else {
        return Defect(absl::StrCat("unexpected key '", key, "'"));
      }
      SkipSpace();
      if (!AtEnd() && Peek() == ',') {
        ++pos_;
        SkipSpace();
      } else if (!AtEnd() && Peek() != '}') {
        return Defect(absl::StrCat("expected ',' or '}' at offset ", pos_));
      }
    }
    RETURN_IF_ERROR(Expect('}'));
    SkipSpace();
    if (!AtEnd()) {
      return Defect(absl::StrCat("unexpected text after the dict at offset ", pos_));
    }
    if (!descr) return Defect("missing key 'descr'");
    if (!fortran) return Defect("missing key 'fortran_order'");
    if (!shape) return Defect("missing key 'shape'");

    ArrayMeta meta;
    ASSIGN_OR_RETURN(meta.dtype, DTypeFromDescr(*descr));
    meta.fortran_order = *fortran;
    meta.shape = std::move(*shape);
    if (static_cast<int>(meta.shape.size()) > limits_.max_ndim) {
      return Defect(absl::StrCat("ndim ", meta.shape.size(), " exceeds ", limits_.max_ndim));
    }
    RETURN_IF_ERROR(ValidateMeta(meta));
    return meta;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  absl::Status Expect(char c) {
    if (AtEnd()) {
      return Defect(absl::StrCat("expected '", std::string(1, c), "' but the header ended"));
    }
    if (Peek() != c) {
      return Defect(absl::StrCat("expected '", std::string(1, c), "' at offset ", pos_));
    }
    ++pos_;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ParseString(absl::string_view what) {
    if (AtEnd() || (Peek() != '\'' && Peek() != '"')) {
      return Defect(absl::StrCat("expected a quoted string for ", what, " at offset ", pos_));
    }
    const char quote = text_[pos_++];
    std::string out;
    while (!AtEnd() && Peek() != quote) {
      const char c = text_[pos_++];
      if (c == '\\' || c == '\n' || static_cast<unsigned char>(c) >= 0x80) {
        return Defect(absl::StrCat("unsupported character in ", what));
      }
      out.push_back(c);
      if (out.size() > 64) return Defect(absl::StrCat(what, " is too long"));
    }
    if (AtEnd()) return Defect(absl::StrCat("unterminated string in ", what));
    ++pos_;
    return out;
  }

  absl::StatusOr<bool> ParseBool() {
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    return Defect("'fortran_order' must be True or False");
  }

  absl::StatusOr<int64_t> ParseDim(size_t index) {
    bool negative = false;
    if (!AtEnd() && (Peek() == '-' || Peek() == '+')) {
      negative = Peek() == '-';
      ++pos_;
    }
    if (AtEnd() || Peek() < '0' || Peek() > '9') {
      return Defect(absl::StrCat("shape dimension ", index, " is not an integer"));
    }
    uint64_t value = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      value = value * 10 + (Peek() - '0');
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Defect(absl::StrCat("shape dimension ", index, " overflows 64 bits"));
      }
      ++pos_;
    }
    if (negative && value != 0) {
      return Defect(absl::StrCat("dimension ", index, " is negative (-", value, ")"));
    }
    return static_cast<int64_t>(value);
  }

  // A Python tuple of non-negative ints: (), (5,), (3, 4), (3, 4,).
  absl::StatusOr<std::vector<int64_t>> ParseShape() {
    if (AtEnd() || Peek() != '(') {
      return Defect("'shape' must be a tuple of integers");
    }
    ++pos_;
    std::vector<int64_t> dims;
    bool trailing_comma = false;
    SkipSpace();
    while (!AtEnd() && Peek() != ')') {
      if (static_cast<int>(dims.size()) >= limits_.max_ndim) {
        return Defect(absl::StrCat("ndim exceeds ", limits_.max_ndim));
      }
      ASSIGN_OR_RETURN(int64_t d, ParseDim(dims.size()));
      dims.push_back(d);
      SkipSpace();
      trailing_comma = false;
      if (!AtEnd() && Peek() == ',') {
        trailing_comma = true;
        ++pos_;
        SkipSpace();
      } else if (!AtEnd() && Peek() != ')') {
        return Defect(absl::StrCat("shape dimension ", dims.size() - 1, " is not an integer"));
      }
    }
    if (AtEnd()) return Defect("unterminated 'shape' tuple");
    ++pos_;  // ')'
    if (dims.size() == 1 && !trailing_comma) {
      return Defect("'shape' (n) is an integer, not a tuple; write (n,)");
    }
    return dims;
  }

  absl::string_view text_;
  const ParseLimits& limits_;
  size_t pos_ = 0;
};

// Returns {preamble size, major version} or 0 size when more bytes are needed.
absl::StatusOr<std::pair<size_t, int>> ReadPreamble(absl::string_view p) {
  constexpr absl::string_view kMagic("\x93NUMPY", 6);
  const size_t n = std::min(p.size(), kMagic.size());
  if (p.substr(0, n) != kMagic.substr(0, n)) {
    return Defect("bad magic: not a .npy file");
  }
  if (p.size() < 8) return std::make_pair(size_t{0}, 0);
  const int major = static_cast<unsigned char>(p[6]);
  const int minor = static_cast<unsigned char>(p[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    return Defect(absl::StrCat("unsupported format version ", major, ".", minor,
                               " (1.0, 2.0 and 3.0 are supported)"));
  }
  return std::make_pair(size_t{major == 1 ? 10u : 12u}, major);
}

}  // namespace

absl::StatusOr<size_t> PeekHeaderSize(absl::string_view prefix, const ParseLimits& limits) {
  ASSIGN_OR_RETURN(auto preamble, ReadPreamble(prefix));
  const auto [preamble_size, major] = preamble;
  if (preamble_size == 0 || prefix.size() < preamble_size) return 0;
  uint64_t hlen = 0;
  for (size_t i = 8; i < preamble_size; ++i) {
    hlen |= uint64_t{static_cast<unsigned char>(prefix[i])} << (8 * (i - 8));
  }
  const uint64_t total = preamble_size + hlen;
  if (total > limits.max_header_bytes) {
    return Defect(absl::StrCat("header of ", total, " bytes exceeds the limit of ",
                               limits.max_header_bytes, " bytes"));
  }
  if (hlen == 0) return Defect("header length is zero");
  return static_cast<size_t>(total);
}

absl::StatusOr<ArrayMeta> ParseHeader(absl::string_view header, const ParseLimits& limits) {
  ASSIGN_OR_RETURN(size_t total, PeekHeaderSize(header, limits));
  if (total == 0) {
    return Defect(
        absl::StrCat("truncated: only ", header.size(), " bytes, the preamble needs more"));
  }
  if (header.size() < total) {
    return Defect(absl::StrCat("truncated: header length field says ", total, " bytes but only ",
                               header.size(), " arrived"));
  }
  if (header.size() > total) {
    return Defect("ParseHeader given more bytes than the header holds");
  }
  const size_t preamble = header[6] == 1 ? 10 : 12;
  absl::string_view text = header.substr(preamble);
  if (text.empty() || text.back() != '\n') {
    return Defect("header does not end with '\\n' (header length lies?)");
  }
  return DictParser(text, limits).Parse();
}

}  // namespace npystream::npy
