#include "server/daemon_config.h"

#include <fstream>
#include <map>

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(DaemonConfigTest, FlagsOverrideEnvironmentOverrideDefaults) {
  std::map<std::string, std::string> env = {{"NPYSTREAM_STORE_BUDGET", "1GiB"},
                                            {"NPYSTREAM_LISTEN", "0.0.0.0:1"}};
  auto getenv = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto c = ParseDaemonConfig({"--listen", "127.0.0.1:0", "--max-ndim=4"}, getenv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:0");
  EXPECT_EQ(c->store_budget, 1ull << 30);
  EXPECT_EQ(c->max_ndim, 4);
  EXPECT_EQ(c->device, "auto");
}

TEST(DaemonConfigTest, BadInputNamesTheFlag) {
  auto none = [](const char*) -> const char* { return nullptr; };
  auto c = ParseDaemonConfig({"--store-budget=lots"}, none);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--store-budget"), std::string::npos);
  EXPECT_NE(ParseDaemonConfig({"--nope=1"}, none).status().message().find("unknown flag --nope"),
            std::string::npos);
  EXPECT_FALSE(ParseDaemonConfig({"--listen"}, none).ok());
  EXPECT_FALSE(ParseDaemonConfig({"--device=tpu"}, none).ok());
  EXPECT_FALSE(ParseDaemonConfig({"--max-ndim=40"}, none).ok());
}

TEST(DaemonConfigTest, ConfigFileIsOverriddenByEnvAndFlags) {
  const std::string path = ::testing::TempDir() + "/npystream_test_config.json";
  {
    std::ofstream out(path);
    out << R"({"store-budget": "2GiB", "max-ndim": 5, "listen": "127.0.0.1:7", "log-format": "json"})";
  }
  std::map<std::string, std::string> env = {{"NPYSTREAM_MAX_NDIM", "6"}};
  auto getenv = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto c = ParseDaemonConfig({"--config", path, "--listen=127.0.0.1:9"}, getenv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->store_budget, 2ull << 30);
  EXPECT_EQ(c->max_ndim, 6);
  EXPECT_EQ(c->listen, "127.0.0.1:9");
  EXPECT_EQ(c->log_format, "json");
  {
    std::ofstream out(path);
    out << R"({"colour": "blue"})";
  }
  auto bad = ParseDaemonConfig({"--config=" + path}, getenv);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown key 'colour'"), std::string::npos);
}

}  // namespace
}  // namespace npystream
