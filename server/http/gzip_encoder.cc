#include "server/http/gzip_encoder.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace npystream {

bool AcceptsGzip(absl::string_view accept_encoding) {
  for (absl::string_view item : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    const std::string coding = absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[0]));
    if (coding != "gzip" && coding != "x-gzip" && coding != "*") continue;
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
      if (p.size() > 2 && absl::AsciiStrToLower(p.substr(0, 2)) == "q=" &&
          !absl::SimpleAtod(p.substr(2), &q)) {
        q = 0;  // a malformed weight does not opt in
      }
    }
    if (q > 0) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<GzipEncoder>> GzipEncoder::Create(int level) {
  std::unique_ptr<GzipEncoder> e(new GzipEncoder());
  // windowBits 15 + 16: a gzip header and trailer around the deflate data.
  const int rc = deflateInit2(&e->z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) return absl::InternalError(absl::StrCat("gzip: deflateInit2 failed (", rc, ")"));
  return e;
}

GzipEncoder::~GzipEncoder() { deflateEnd(&z_); }

absl::Status GzipEncoder::Append(absl::string_view in, bool finish, std::string* out) {
  if (finished_) return absl::FailedPreconditionError("gzip: the member is already finished");
  constexpr size_t kMaxTake = std::numeric_limits<uInt>::max() / 2;
  z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z_.avail_in = 0;
  size_t left = in.size();
  for (;;) {
    if (z_.avail_in == 0 && left > 0) {
      const size_t take = std::min(left, kMaxTake);
      z_.avail_in = static_cast<uInt>(take);
      left -= take;
    }
    const int flush = (finish && left == 0) ? Z_FINISH : Z_NO_FLUSH;
    const size_t base = out->size();
    const size_t room = deflateBound(&z_, z_.avail_in) + 64;
    out->resize(base + room);
    z_.next_out = reinterpret_cast<Bytef*>(out->data() + base);
    z_.avail_out = static_cast<uInt>(room);
    const int rc = deflate(&z_, flush);
    out->resize(base + room - z_.avail_out);
    if (rc == Z_STREAM_ERROR) return absl::InternalError("gzip: deflate failed");
    if (rc == Z_STREAM_END) {
      finished_ = true;
      return absl::OkStatus();
    }
    // Without Z_FINISH, room left over means zlib took all it was given.
    if (flush == Z_NO_FLUSH && left == 0 && z_.avail_in == 0 && z_.avail_out != 0) {
      return absl::OkStatus();
    }
  }
}

}  // namespace npystream
