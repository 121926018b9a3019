#include "server/http/routes.h"

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(RoutesTest, FixedPaths) {
  EXPECT_EQ(MatchRoute("GET", "/metrics").kind, Route::kMetrics);
  EXPECT_EQ(MatchRoute("GET", "/healthz").kind, Route::kHealthz);
  EXPECT_EQ(MatchRoute("GET", "/readyz?verbose=1").kind, Route::kReadyz);
  EXPECT_FALSE(MatchRoute("GET", "/healthz").needs_token);
  const Route list = MatchRoute("GET", "/v1/tensors");
  EXPECT_EQ(list.kind, Route::kTensorList);
  EXPECT_TRUE(list.needs_token);
}

TEST(RoutesTest, NpyDownloadDecodesTheHandle) {
  const Route r = MatchRoute("GET", "/v1/tensors/a%3Ab.c.npy?x=1");
  EXPECT_EQ(r.kind, Route::kTensorNpy);
  EXPECT_EQ(r.handle, "a:b.c");
  EXPECT_TRUE(r.needs_token);
}

TEST(RoutesTest, RefusalsNameTheProblem) {
  const Route post = MatchRoute("POST", "/metrics");
  EXPECT_EQ(post.kind, Route::kMethodNotAllowed);
  EXPECT_EQ(post.error, "only GET is served");
  const Route bare = MatchRoute("GET", "/v1/tensors/abc");
  EXPECT_EQ(bare.kind, Route::kNotFound);
  EXPECT_TRUE(bare.needs_token);  // 401 before 404 under /v1/tensors
  EXPECT_EQ(bare.error, "use /v1/tensors/{handle}.npy");
  EXPECT_EQ(MatchRoute("GET", "/nope").error, "no route for /nope");
}

TEST(RoutesTest, PercentDecodeKeepsMalformedEscapes) {
  EXPECT_EQ(PercentDecode("a%20b"), "a b");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
  EXPECT_EQ(PercentDecode("%41"), "A");
  EXPECT_EQ(PercentDecode("%"), "%");
}

}  // namespace
}  // namespace npystream
