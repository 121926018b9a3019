#include "server/testing/engine_fuzz_env.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "server/testing/build_dirs.h"

namespace npystream::testing {
namespace {

namespace fs = std::filesystem;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "engine_fuzz_env: %s\n", what);
    std::abort();
  }
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  Check(out.good(), "cannot write a model config");
}

EngineFuzzEnv* Make() {
  const fs::path demo = fs::path(::npystream::testing::BuildDir()) / "models" / "demo";
  Check(fs::exists(demo / "model.pt"), "no demo model in the build tree");
  char dir_template[] = "/tmp/npystream-fuzz-models-XXXXXX";
  Check(mkdtemp(dir_template) != nullptr, "mkdtemp failed");
  const fs::path repo(dir_template);
  for (const char* name : {"demo", "bare", "batched"}) {
    fs::create_directory(repo / name);
    fs::copy_file(demo / "model.pt", repo / name / "model.pt");
  }
  fs::copy_file(demo / "config.json", repo / "demo" / "config.json");
  WriteFile(repo / "batched" / "config.json",
            R"({"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 1, 28, 28]}],
                "max_batch": 64, "instances": 1,
                "dynamic_batching": {"max_batch": 16, "max_queue_delay_us": 0}})");

  auto* env = new EngineFuzzEnv;
  TensorStore::Options store_options;
  store_options.budget_bytes = 64 << 20;
  auto store = TensorStore::Create(store_options);
  Check(store.ok(), "store");
  env->store = std::move(*store);
  InferenceEngine::Options engine_options;
  engine_options.model_repository = repo.string();
  engine_options.store = env->store.get();
  engine_options.intra_op_threads = 1;
  auto engine = InferenceEngine::Create(engine_options);
  Check(engine.ok() && (*engine)->ListModels().models.size() == 3, "engine");
  env->engine = std::move(*engine);

  TensorStore::InsertOptions x1;
  x1.name = "x1";
  Check(env->store->Insert(at::zeros({2, 1, 28, 28}), npy::DType::kFloat32, x1).ok(), "x1");
  TensorStore::InsertOptions i1;
  i1.name = "i1";
  Check(env->store->Insert(at::arange(3, at::kLong), npy::DType::kInt64, i1).ok(), "i1");
  env->baseline_bytes = env->store->budget().used("cpu");
  env->limits.max_tensor_bytes = 16 << 20;
  return env;
}

}  // namespace

EngineFuzzEnv& GetEngineFuzzEnv() {
  static EngineFuzzEnv* env = Make();
  return *env;
}

}  // namespace npystream::testing
