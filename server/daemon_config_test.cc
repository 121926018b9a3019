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
  EXPECT_EQ(c->listen, std::vector<std::string>{"127.0.0.1:0"});
  EXPECT_EQ(c->store_budget, 1ull << 30);
  EXPECT_EQ(c->max_ndim, 4);
  EXPECT_EQ(c->device, "auto");
}

TEST(DaemonConfigTest, ListenRepeatsAndTakesUnixSockets) {
  std::map<std::string, std::string> env = {{"NPYSTREAM_LISTEN", "0.0.0.0:1,unix:///run/a.sock"}};
  auto getenv = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto from_env = ParseDaemonConfig({}, getenv);
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->listen, (std::vector<std::string>{"0.0.0.0:1", "unix:///run/a.sock"}));
  // Flags replace the environment's list, then add up.
  auto flags = ParseDaemonConfig(
      {"--listen", "127.0.0.1:0", "--listen=unix:///tmp/n.sock", "--shm-dir=/dev/shm/n"}, getenv);
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->listen, (std::vector<std::string>{"127.0.0.1:0", "unix:///tmp/n.sock"}));
  EXPECT_EQ(flags->shm_dir, "/dev/shm/n");
  auto none = [](const char*) -> const char* { return nullptr; };
  EXPECT_NE(ParseDaemonConfig({"--listen=nowhere"}, none).status().message().find("--listen"),
            std::string::npos);
  EXPECT_NE(ParseDaemonConfig({"--shm-dir=rel"}, none).status().message().find("--shm-dir"),
            std::string::npos);
  const std::string path = ::testing::TempDir() + "/npystream_listen_config.json";
  std::ofstream(path) << R"({"listen": ["127.0.0.1:5", "unix:///tmp/x.sock"]})";
  auto file = ParseDaemonConfig({"--config", path}, none);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->listen, (std::vector<std::string>{"127.0.0.1:5", "unix:///tmp/x.sock"}));
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
  EXPECT_EQ(c->listen, std::vector<std::string>{"127.0.0.1:9"});
  EXPECT_EQ(c->log_format, "json");
  {
    std::ofstream out(path);
    out << R"({"colour": "blue"})";
  }
  auto bad = ParseDaemonConfig({"--config=" + path}, getenv);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown key 'colour'"), std::string::npos);
}

// --peer-address, NPYSTREAM_PEER_ADDRESS and the config file's peer_address
// (underscores name the same flag as dashes) set one template; it needs
// {replica}.
TEST(DaemonConfigTest, PeerAddressFromFlagEnvAndConfig) {
  auto none = [](const char*) -> const char* { return nullptr; };
  auto flag = ParseDaemonConfig({"--peer-address", "{replica}.peers:50051"}, none);
  ASSERT_TRUE(flag.ok()) << flag.status();
  EXPECT_EQ(flag->peer_address, "{replica}.peers:50051");
  EXPECT_EQ(ParseDaemonConfig({}, none)->peer_address, "");
  auto env = [](const char* k) -> const char* {
    return std::string(k) == "NPYSTREAM_PEER_ADDRESS" ? "unix:///run/{replica}.sock" : nullptr;
  };
  EXPECT_EQ(ParseDaemonConfig({}, env)->peer_address, "unix:///run/{replica}.sock");
  const std::string path = ::testing::TempDir() + "/npystream_test_peers.json";
  {
    std::ofstream out(path);
    out << R"({"peer_address": "{replica}.svc:1", "store_budget": "1GiB"})";
  }
  auto file = ParseDaemonConfig({"--config", path}, none);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->peer_address, "{replica}.svc:1");
  EXPECT_EQ(file->store_budget, 1ull << 30);
  auto bad = ParseDaemonConfig({"--peer-address=peers:50051"}, none);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("needs {replica}"), std::string::npos) << bad.status();
}

TEST(DaemonConfigTest, PeerConnectTimeoutIsPositiveSeconds) {
  auto none = [](const char*) -> const char* { return nullptr; };
  EXPECT_EQ(ParseDaemonConfig({}, none)->peer_connect_timeout_seconds, 2);
  EXPECT_EQ(
      ParseDaemonConfig({"--peer-connect-timeout", "0.5"}, none)->peer_connect_timeout_seconds,
      0.5);
  for (const char* bad : {"0", "-1", "soon", "nan", "7200"}) {
    auto parsed = ParseDaemonConfig({"--peer-connect-timeout", bad}, none);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("--peer-connect-timeout"), std::string::npos);
  }
}

}  // namespace
}  // namespace npystream
