// JsonText: a JSON document as the text the daemon sends. A string that is
// not valid UTF-8 (a request path echoed in an error, a model folder's name)
// is written with U+FFFD in place of its bad bytes instead of making the JSON
// library throw (which, on the admin port, would abort the daemon). Every
// JSON reply goes through it.
#ifndef NPYSTREAM_SERVER_COMMON_JSON_TEXT_H_
#define NPYSTREAM_SERVER_COMMON_JSON_TEXT_H_

#include <string>

#include "nlohmann/json.hpp"

namespace npystream {

inline std::string JsonText(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_JSON_TEXT_H_
