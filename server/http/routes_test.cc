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
  EXPECT_EQ(post.error, "/metrics takes GET, not POST");
  EXPECT_EQ(post.allow, "GET");
  const Route get_infer = MatchRoute("GET", "/v1/models/demo/infer");
  EXPECT_EQ(get_infer.kind, Route::kMethodNotAllowed);
  EXPECT_EQ(get_infer.allow, "POST");
  EXPECT_TRUE(get_infer.needs_token);
  EXPECT_EQ(MatchRoute("GET", "/v1/models/demo/run").error,
            "no route for model 'demo': run (use infer or subscribe)");
  EXPECT_EQ(MatchRoute("GET", "/v1/models//infer").kind, Route::kNotFound);
  EXPECT_EQ(MatchRoute("GET", "/v1/models/a/b/subscribe").kind, Route::kNotFound);
  const Route bare = MatchRoute("GET", "/v1/tensors/a%7Eb");
  EXPECT_EQ(bare.kind, Route::kTensorInfo);
  EXPECT_TRUE(bare.needs_token);
  EXPECT_EQ(bare.handle, "a~b");
  for (const char* empty : {"/v1/tensors/", "/v1/tensors/.npy"}) {
    const Route none = MatchRoute("GET", empty);
    EXPECT_EQ(none.kind, Route::kNotFound) << empty;
    EXPECT_TRUE(none.needs_token);  // 401 before 404 under /v1/tensors
    EXPECT_EQ(none.error, "use /v1/tensors/{handle} or /v1/tensors/{handle}.npy");
  }
  EXPECT_EQ(MatchRoute("GET", "/nope").error, "no route for /nope");
}

TEST(RoutesTest, DashboardModelsAndQueries) {
  EXPECT_EQ(MatchRoute("GET", "/").kind, Route::kDashboard);
  EXPECT_TRUE(MatchRoute("GET", "/?token=x").needs_token);
  EXPECT_EQ(MatchRoute("GET", "/?token=x").query.at("token"), "x");
  const Route asset = MatchRoute("GET", "/static/app.js");
  EXPECT_EQ(asset.kind, Route::kAsset);
  EXPECT_EQ(asset.asset, "app.js");
  EXPECT_TRUE(asset.needs_token);
  EXPECT_EQ(MatchRoute("GET", "/v1/models").kind, Route::kModelList);
  const Route infer = MatchRoute("POST", "/v1/models/my%20net/infer?capture=conv1,fc&x");
  EXPECT_EQ(infer.kind, Route::kModelInfer);
  EXPECT_EQ(infer.model, "my net");
  EXPECT_EQ(infer.query.at("capture"), "conv1,fc");
  EXPECT_EQ(infer.query.at("x"), "");
  const Route sub = MatchRoute("GET", "/v1/models/demo/subscribe?layers=a%2Cb&max_hz=2.5&t=a+b");
  EXPECT_EQ(sub.kind, Route::kModelSubscribe);
  EXPECT_EQ(sub.model, "demo");
  EXPECT_EQ(sub.query.at("layers"), "a,b");
  EXPECT_EQ(sub.query.at("max_hz"), "2.5");
  EXPECT_EQ(sub.query.at("t"), "a b");
}

TEST(RoutesTest, OpenInferenceProtocolPaths) {
  EXPECT_EQ(MatchRoute("GET", "/v2").kind, Route::kOipServer);
  EXPECT_TRUE(MatchRoute("GET", "/v2").needs_token);
  EXPECT_EQ(MatchRoute("GET", "/v2/health/live").kind, Route::kOipLive);
  EXPECT_FALSE(MatchRoute("GET", "/v2/health/live").needs_token);
  EXPECT_EQ(MatchRoute("GET", "/v2/health/ready").kind, Route::kOipReady);
  const Route meta = MatchRoute("GET", "/v2/models/demo");
  EXPECT_EQ(meta.kind, Route::kOipModel);
  EXPECT_EQ(meta.model, "demo");
  EXPECT_TRUE(meta.needs_token);
  const Route ready = MatchRoute("GET", "/v2/models/demo/versions/1/ready");
  EXPECT_EQ(ready.kind, Route::kOipModelReady);
  EXPECT_EQ(ready.version, "1");
  const Route infer = MatchRoute("POST", "/v2/models/my%20net/infer");
  EXPECT_EQ(infer.kind, Route::kOipInfer);
  EXPECT_EQ(infer.model, "my net");
  EXPECT_EQ(MatchRoute("GET", "/v2/models/demo/infer").kind, Route::kMethodNotAllowed);
  EXPECT_EQ(MatchRoute("GET", "/v2/models/demo/stats").kind, Route::kNotFound);
  EXPECT_EQ(MatchRoute("GET", "/v2/repository").kind, Route::kNotFound);
}

TEST(RoutesTest, PercentDecodeKeepsMalformedEscapes) {
  EXPECT_EQ(PercentDecode("a%20b"), "a b");
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");
  EXPECT_EQ(PercentDecode("%41"), "A");
  EXPECT_EQ(PercentDecode("%"), "%");
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
}

}  // namespace
}  // namespace npystream
