#include "server/views/views.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/npy/npy_writer.h"
#include "server/views/host_view_reader.h"
#include "server/views/torch_view.h"

namespace npystream::views {

absl::StatusOr<NpySource> Views::Open(std::shared_ptr<const StoredTensor> tensor,
                                      const ViewRequest& request) const {
  NpySource source;
  if (request.whole()) {
    ASSIGN_OR_RETURN(source.reader, options_.transfer->OpenReader(tensor));
    source.info = tensor->info();
    source.npy_header = tensor->npy_header();
    source.pin = std::move(tensor);
    return source;
  }
  ASSIGN_OR_RETURN(ViewPlan plan, ResolveView(tensor->info().meta, request));
  const uint64_t whole_bytes = tensor->info().nbytes;
  const bool host = tensor->host_data() != nullptr || tensor->info().nbytes == 0;
  if (host && !options_.torch_for_host) {
    source.info = tensor->info();
    source.info.meta = plan.out;
    source.info.nbytes = plan.out.NumBytes();
    source.npy_header = npy::WriteHeader(plan.out);
    source.info.npy_bytes = source.npy_header.size() + source.info.nbytes;
    source.reader = NewHostViewReader(tensor, std::move(plan));
    source.pin = std::move(tensor);
  } else {
    if (options_.store == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("views of tensors on ", tensor->info().device, " are not served here"));
    }
    ASSIGN_OR_RETURN(std::shared_ptr<const StoredTensor> result,
                     ComputeTorchView(options_.store, *tensor, plan));
    ASSIGN_OR_RETURN(source.reader, options_.transfer->OpenReader(result));
    source.info = result->info();
    source.info.handle = tensor->info().handle;
    source.info.name = tensor->info().name;
    source.info.created_unix_ms = tensor->info().created_unix_ms;
    source.info.expires_unix_ms = tensor->info().expires_unix_ms;
    source.npy_header = result->npy_header();
    source.pin = std::move(result);
  }
  if (options_.metrics != nullptr) options_.metrics->ViewOpened(whole_bytes, source.info.nbytes);
  return source;
}

}  // namespace npystream::views
