#include "server/common/log.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace npystream {
namespace {

TEST(LogTest, TextQuotesOnlyWhatNeedsIt) {
  const std::string line = FormatLogLine("T", LogLevel::kWarning, "rpc",
                                         {{"method", "Fetch"},
                                          {"code", 8},
                                          {"bytes", uint64_t{1} << 40},
                                          {"ms", 1.5},
                                          {"clean", true},
                                          {"error", "store budget exceeded on cpu: need 4 \"MiB\""},
                                          {"empty", ""}},
                                         /*json=*/false);
  EXPECT_EQ(line,
            "T WARNING rpc method=Fetch code=8 bytes=1099511627776 ms=1.5 clean=true "
            "error=\"store budget exceeded on cpu: need 4 \\\"MiB\\\"\" empty=\"\"\n");
}

TEST(LogTest, TextEscapesNewlinesAndEquals) {
  const std::string line =
      FormatLogLine("T", LogLevel::kInfo, "e", {{"k", "a=b\nc"}}, /*json=*/false);
  EXPECT_EQ(line, "T INFO e k=\"a=b\\nc\"\n");
}

TEST(LogTest, JsonIsOneValidObjectWithTypedValues) {
  const std::string spaced = "store budget exceeded on cpu: need 4 MiB, have 0";
  const std::string line = FormatLogLine("2026-11-24T00:00:00.000Z", LogLevel::kError, "put_failed",
                                         {{"error", spaced},
                                          {"code", -3},
                                          {"n", uint64_t{18446744073709551615u}},
                                          {"ratio", 0.25},
                                          {"ok", false},
                                          {"nan", std::nan("")},
                                          {"ctrl", std::string("a\x01\x7f\"\\b", 6)}},
                                         /*json=*/true);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-11-24T00:00:00.000Z");
  EXPECT_EQ(j["level"], "ERROR");
  EXPECT_EQ(j["event"], "put_failed");
  EXPECT_EQ(j["error"], spaced);
  EXPECT_EQ(j["code"], -3);
  EXPECT_EQ(j["n"].get<uint64_t>(), 18446744073709551615u);
  EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 0.25);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["nan"], "NaN");
  EXPECT_EQ(j["ctrl"], std::string("a\x01\x7f\"\\b", 6));
  EXPECT_EQ(j.size(), 10u);
}

// A field list kept in a vector outlives the temporaries it was built from
// (a ternary of std::strings, a function's result): their text is owned.
TEST(LogTest, TemporaryStringsInAFieldVectorAreOwned) {
  const std::string handle;
  std::vector<LogField> fields = {{"handle", handle.empty() ? "-" : handle},
                                  {"joined", std::string("a") + " b"}};
  std::string filler(4096, 'x');  // reuse the freed stack/heap if it dangled
  EXPECT_EQ(FormatLogLine("T", LogLevel::kInfo, "e", fields, /*json=*/false),
            "T INFO e handle=- joined=\"a b\"\n");
}

TEST(LogTest, ParseLogLevel) {
  LogLevel level = LogLevel::kInfo;
  EXPECT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_TRUE(ParseLogLevel("warn", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("loud", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
}

}  // namespace
}  // namespace npystream
