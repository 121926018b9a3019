#include "server/rpc/oip_service.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/wire/wire_format.h"
#include "server/oip/oip_infer.h"
#include "server/oip/oip_types.h"
#include "server/rpc/model_infer_reader.h"
#include "server/rpc/unary_done.h"

namespace npystream::rpc {
namespace {

using inference::ModelInferRequest;
using inference::ModelStreamInferResponse;

using oip::kPlatform;
using oip::kServerName;
using oip::kServerVersion;
constexpr uint32_t kRawOutputField = inference::ModelInferResponse::kRawOutputContentsFieldNumber;

// Frees the pin a payload slice holds once gRPC is done with the bytes.
void ReleaseOwner(void* owner) { delete static_cast<std::shared_ptr<const void>*>(owner); }

const ModelSummary* FindModel(const ModelListing& listing, const std::string& name) {
  for (const ModelSummary& m : listing.models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

oip::InferOptions InferOptionsFor(grpc::CallbackServerContext* context, const PutLimits& limits) {
  oip::InferOptions options;
  options.limits = limits;
  options.cancelled = [context] { return context->IsCancelled(); };
  if (context->deadline() < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    options.deadline = absl::FromChrono(context->deadline());
  }
  return options;
}

// The response: the message without raw outputs, then each raw output as
// its tag and length (copied) and a slice over the tensor's host memory.
grpc::ByteBuffer FrameResponse(const oip::InferOutcome& outcome, uint64_t* bytes) {
  std::vector<grpc::Slice> slices;
  std::string pending = outcome.response.SerializeAsString();
  *bytes = 0;
  for (const auto& tensor : outcome.raw) {
    const uint64_t n = tensor == nullptr ? 0 : tensor->info().nbytes;
    wire::AppendLengthDelimitedPrefix(&pending, kRawOutputField, n);
    if (n == 0) continue;
    slices.emplace_back(pending);
    pending.clear();
    auto* owner = new std::shared_ptr<const void>(tensor);
    slices.emplace_back(const_cast<char*>(tensor->host_data()), n, &ReleaseOwner, owner);
    *bytes += n;
  }
  if (!pending.empty()) slices.emplace_back(pending);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

class StreamInferReactor
    : public grpc::ServerBidiReactor<ModelInferRequest, ModelStreamInferResponse> {
 public:
  StreamInferReactor(OipService* service, grpc::CallbackServerContext* context,
                     std::unique_ptr<CallTicket> ticket)
      : service_(service), context_(context), ticket_(std::move(ticket)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side: every request was answered
      Finish(grpc::Status::OK);
      return;
    }
    ticket_->Touch();
    service_->workers()->Schedule([this] {
      response_.Clear();
      const size_t raw_count = static_cast<size_t>(request_.raw_input_contents_size());
      auto raw = [this](size_t index, const oip::Sink& sink) {
        const std::string& bytes = request_.raw_input_contents(static_cast<int>(index));
        return sink(bytes.data(), bytes.size());
      };
      absl::StatusOr<oip::InferOutcome> outcome =
          oip::RunModelInfer(service_->engine(), service_->store(), request_, raw_count, raw,
                             InferOptionsFor(context_, service_->limits()));
      if (!outcome.ok()) {
        response_.set_error_message(std::string(outcome.status().message()));
        response_.mutable_infer_response()->set_model_name(request_.model_name());
        response_.mutable_infer_response()->set_id(request_.id());
        ++errors_;
      } else {
        inference::ModelInferResponse* r = response_.mutable_infer_response();
        *r = std::move(outcome->response);
        for (const auto& t : outcome->raw) {
          if (t == nullptr) {
            r->add_raw_output_contents();
          } else {
            r->add_raw_output_contents(t->host_data(), t->info().nbytes);
            ticket_->AddSent(t->info().nbytes);
          }
        }
      }
      StartWrite(&response_);
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    ticket_->Done(context_->IsCancelled() ? static_cast<int>(absl::StatusCode::kCancelled) : 0,
                  errors_ > 0 ? absl::StrCat(errors_, " requests failed") : "");
    delete this;
  }

 private:
  OipService* const service_;
  grpc::CallbackServerContext* const context_;
  std::unique_ptr<CallTicket> ticket_;
  ModelInferRequest request_;
  ModelStreamInferResponse response_;
  int errors_ = 0;
};

class RefusedStream : public grpc::ServerBidiReactor<ModelInferRequest, ModelStreamInferResponse> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

OipService::OipService(InferenceEngine* engine, TensorStore* store, const PutLimits& limits,
                       CallGate* gate, ThreadPool* workers)
    : engine_(engine), store_(store), limits_(limits), gate_(gate), workers_(workers) {}

grpc::ServerUnaryReactor* OipService::ServerLive(grpc::CallbackServerContext* context,
                                                 const inference::ServerLiveRequest*,
                                                 inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishUnary(context->DefaultReactor(), nullptr, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ServerReady(grpc::CallbackServerContext* context,
                                                  const inference::ServerReadyRequest*,
                                                  inference::ServerReadyResponse* response) {
  response->set_ready(!gate_->draining());
  return FinishUnary(context->DefaultReactor(), nullptr, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelReady(grpc::CallbackServerContext* context,
                                                 const inference::ModelReadyRequest* request,
                                                 inference::ModelReadyResponse* response) {
  auto ticket = gate_->Admit(context, "ModelReady");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  response->set_ready(oip::FindServedModel(engine_, request->name(), request->version()).ok());
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ServerMetadata(grpc::CallbackServerContext* context,
                                                     const inference::ServerMetadataRequest*,
                                                     inference::ServerMetadataResponse* response) {
  auto ticket = gate_->Admit(context, "ServerMetadata");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  for (const std::string& e : oip::ServerExtensions()) response->add_extensions(e);
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelMetadata(grpc::CallbackServerContext* context,
                                                    const inference::ModelMetadataRequest* request,
                                                    inference::ModelMetadataResponse* response) {
  auto ticket = gate_->Admit(context, "ModelMetadata");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  const absl::StatusOr<ModelSummary> m =
      oip::FindServedModel(engine_, request->name(), request->version());
  if (m.ok()) {
    response->set_name(m->name);
    response->add_versions("1");
    response->set_platform(kPlatform);
    for (const InputSpec& in : m->inputs) {
      auto* t = response->add_inputs();
      t->set_name(in.name);
      if (in.dtype) t->set_datatype(oip::DatatypeName(*in.dtype));
      for (int64_t d : in.shape) t->add_shape(d);
    }
    for (const std::string& out : m->outputs) response->add_outputs()->set_name(out);
  }
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), m.status());
}

grpc::ServerUnaryReactor* OipService::ModelInfer(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  auto ticket = gate_->Admit(context, "ModelInfer");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  auto* reactor = context->DefaultReactor();
  workers_->Schedule([this, context, reactor, request, response, t = ticket->release()] {
    std::unique_ptr<CallTicket> ticket(t);
    absl::Status status;
    if (context->IsCancelled()) {
      status = absl::DeadlineExceededError("call cancelled or past its deadline before it ran");
    } else {
      ModelInferReader raw(*request);
      ModelInferRequest meta;
      size_t raw_count = 0;
      status = raw.Parse(&meta, &raw_count);
      if (status.ok()) {
        ticket->set_handle(meta.model_name());
        ticket->AddReceived(request->Length());
        absl::StatusOr<oip::InferOutcome> outcome = oip::RunModelInfer(
            engine_, store_, meta, raw_count,
            [&raw](size_t index, const oip::Sink& sink) { return raw.Read(index, sink); },
            InferOptionsFor(context, limits_));
        if (outcome.ok()) {
          uint64_t sent = 0;
          *response = FrameResponse(*outcome, &sent);
          ticket->AddSent(sent);
        } else {
          status = outcome.status();
        }
      }
    }
    FinishUnary(reactor, std::move(ticket), status);
  });
  return reactor;
}

grpc::ServerBidiReactor<ModelInferRequest, ModelStreamInferResponse>* OipService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  auto ticket = gate_->Admit(context, "ModelStreamInfer");
  if (!ticket.ok()) return new RefusedStream(ticket.status());
  return new StreamInferReactor(this, context, std::move(*ticket));
}

grpc::ServerUnaryReactor* OipService::ModelConfig(grpc::CallbackServerContext* context,
                                                  const inference::ModelConfigRequest* request,
                                                  inference::ModelConfigResponse* response) {
  auto ticket = gate_->Admit(context, "ModelConfig");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  const absl::StatusOr<ModelSummary> m =
      oip::FindServedModel(engine_, request->name(), request->version());
  if (m.ok()) {
    inference::ModelConfig* c = response->mutable_config();
    c->set_name(m->name);
    c->set_platform(kPlatform);
    c->set_backend("pytorch");
    c->set_max_batch_size(static_cast<int32_t>(m->max_batch));
    for (const InputSpec& in : m->inputs) {
      auto* i = c->add_input();
      i->set_name(in.name);
      if (in.dtype)
        i->set_data_type(static_cast<inference::DataType>(oip::ConfigDataType(*in.dtype)));
      // Triton's dims leave out the batch dimension of a batching model.
      const size_t skip = m->max_batch > 0 && !in.shape.empty() && in.shape[0] < 0 ? 1 : 0;
      for (size_t d = skip; d < in.shape.size(); ++d) i->add_dims(in.shape[d]);
    }
    for (const std::string& out : m->outputs) c->add_output()->set_name(out);
    auto* group = c->add_instance_group();
    group->set_count(static_cast<int32_t>(m->instances));
    if (m->device.rfind("cuda:", 0) == 0) {
      group->set_kind(inference::ModelInstanceGroup::KIND_GPU);
      group->add_gpus(std::stoi(m->device.substr(5)));
    } else {
      group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
    }
  }
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), m.status());
}

grpc::ServerUnaryReactor* OipService::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  auto ticket = gate_->Admit(context, "ModelStatistics");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  std::vector<std::string> names;
  if (request->name().empty()) {
    for (const ModelSummary& m : engine_->ListModels().models) names.push_back(m.name);
  } else {
    names.push_back(request->name());
  }
  absl::Status status =
      request->name().empty()
          ? absl::OkStatus()
          : oip::FindServedModel(engine_, request->name(), request->version()).status();
  for (const std::string& name : names) {
    if (!status.ok()) break;
    absl::StatusOr<ModelStats> stats = engine_->Stats(name);
    if (!stats.ok()) {
      status = stats.status();
      break;
    }
    auto* s = response->add_model_stats();
    s->set_name(name);
    s->set_version("1");
    s->set_last_inference(static_cast<uint64_t>(stats->last_inference_unix_ms));
    s->set_inference_count(stats->inference_count);
    s->set_execution_count(stats->execution_count);
    auto* is = s->mutable_inference_stats();
    is->mutable_success()->set_count(stats->success_count);
    is->mutable_success()->set_ns(stats->success_ns);
    is->mutable_fail()->set_count(stats->fail_count);
    is->mutable_fail()->set_ns(stats->fail_ns);
  }
  if (!status.ok()) response->Clear();
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), status);
}

grpc::ServerUnaryReactor* OipService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  auto ticket = gate_->Admit(context, "RepositoryIndex");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  const ModelListing listing = engine_->ListModels();
  for (const ModelSummary& m : listing.models) {
    auto* e = response->add_models();
    e->set_name(m.name);
    e->set_version("1");
    e->set_state("READY");
  }
  if (!request->ready()) {
    for (const auto& [name, why] : listing.errors) {
      auto* e = response->add_models();
      e->set_name(name);
      e->set_state("UNAVAILABLE");
      e->set_reason(why);
    }
  }
  return FinishUnary(context->DefaultReactor(), std::move(*ticket), absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  auto ticket = gate_->Admit(context, "RepositoryModelLoad");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  auto* reactor = context->DefaultReactor();
  // Loading re-reads the whole repository (the engine's Reload): slow, so
  // off gRPC's threads.
  workers_->Schedule([this, reactor, name = request->model_name(), t = ticket->release()] {
    const ModelListing listing = engine_->Reload();
    absl::Status status;
    if (FindModel(listing, name) == nullptr) {
      status = absl::NotFoundError(absl::StrCat("no model named '", name, "'"));
      for (const auto& [failed, why] : listing.errors) {
        if (failed == name) {
          status =
              absl::InvalidArgumentError(absl::StrCat("model '", name, "' failed to load: ", why));
        }
      }
    }
    FinishUnary(reactor, std::unique_ptr<CallTicket>(t), status);
  });
  return reactor;
}

grpc::ServerUnaryReactor* OipService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  auto ticket = gate_->Admit(context, "RepositoryModelUnload");
  if (!ticket.ok()) return FinishUnary(context->DefaultReactor(), nullptr, ticket.status());
  return FinishUnary(context->DefaultReactor(), std::move(*ticket),
                     engine_->Unload(request->model_name()));
}

}  // namespace npystream::rpc
