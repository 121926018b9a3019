// ThreadSanitizer builds only (NPYSTREAM_SANITIZE=thread): Debian's gRPC is
// not built with TSan, so TSan cannot see how gRPC orders a batch of call
// operations with its completion: the thread that starts a batch (filling
// in grpcpp's op set, our reactor's state) and the thread that runs the
// completion (reading them) look unordered, and every callback reports.
// This file interposes the C-core entry points where a batch starts and
// where its completion is handed back (the executable's definitions win
// over libgrpc's; each forwards to libgrpc's own via dlsym(RTLD_NEXT)) and
// tells TSan the order gRPC guarantees there, as the annotations in gRPC's
// own TSan build do: starting a batch releases its tag, and the completion
// acquires it (Next/Pluck on return; a callback functor before it runs, by
// routing its run function through a trampoline). Linked into every
// executable of that build, next to tsan_absl.cc.
// NPYSTREAM_TSAN_GRPC_SHIM=off forwards without annotating (tsan_shims_test
// shows that the reactor probe then reports: the annotations are needed).
#include <grpc/grpc.h>
#include <grpcpp/support/server_callback.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server/testing/tsan_interpose.h"

// In the TSan runtime, not in <sanitizer/tsan_interface.h> here: TSan ignores
// this thread's memory accesses between the two (its synchronisation counts).
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();

namespace {

using npystream::testing::NextDefinition;

// Executable segments of the loaded objects: a callback tag starts with a
// pointer to its run function (code); any other tag is a C++ object whose
// first word is a vtable pointer (read-only data) or is not read at all.
struct Range {
  uintptr_t begin, end;
};
std::vector<Range>& CodeRanges() {
  static std::vector<Range>* ranges = [] {
    auto* out = new std::vector<Range>;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0) {
              const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
              static_cast<std::vector<Range>*>(data)->push_back({begin, begin + ph.p_memsz});
            }
          }
          return 0;
        },
        out);
    return out;
  }();
  return *ranges;
}

bool IsCode(uintptr_t p) {
  for (const Range& r : CodeRanges()) {
    if (p >= r.begin && p < r.end) return true;
  }
  return false;
}

using RunFn = void (*)(grpc_completion_queue_functor*, int);

// One trampoline per distinct run function (a handful: grpcpp's tag kinds).
constexpr int kSlots = 32;
std::atomic<RunFn> g_run[kSlots];

template <int I>
void Trampoline(grpc_completion_queue_functor* functor, int ok) {
  __tsan_acquire(functor);
  g_run[I].load(std::memory_order_acquire)(functor, ok);
}

template <int... I>
constexpr std::array<RunFn, kSlots> MakeTrampolines(std::integer_sequence<int, I...>) {
  return {&Trampoline<I>...};
}
constexpr std::array<RunFn, kSlots> kTrampolines =
    MakeTrampolines(std::make_integer_sequence<int, kSlots>());

RunFn TrampolineFor(RunFn run) {
  for (int i = 0; i < kSlots; ++i) {
    if (kTrampolines[i] == run) return run;  // routed already
  }
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  for (int i = 0; i < kSlots; ++i) {
    RunFn seen = g_run[i].load(std::memory_order_acquire);
    if (seen == run) return kTrampolines[i];
    if (seen == nullptr) {
      g_run[i].store(run, std::memory_order_release);
      return kTrampolines[i];
    }
  }
  std::fprintf(stderr, "tsan_grpc: more than %d callback kinds\n", kSlots);
  std::abort();
}

bool Enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("NPYSTREAM_TSAN_GRPC_SHIM");
    return v == nullptr || std::string(v) != "off";
  }();
  return enabled;
}

// The tag's own fields belong to gRPC: TSan does not track these accesses.
__attribute__((no_sanitize("thread"))) void HandOff(void* tag) {
  if (tag == nullptr || !Enabled()) return;
  __tsan_release(tag);
  const auto p = reinterpret_cast<uintptr_t>(tag);
  if (p < 4096 || p % alignof(void*) != 0) return;
  auto* functor = static_cast<grpc_completion_queue_functor*>(tag);
  const RunFn run = functor->functor_run;
  if (!IsCode(reinterpret_cast<uintptr_t>(run))) return;
  functor->functor_run = TrampolineFor(run);
}

// Calls real(arg) with TSan ignoring the memory accesses it makes.
template <typename Arg>
void IgnoringAccesses(void (*real)(Arg), Arg arg) {
  if (!Enabled()) return real(arg);
  __tsan_ignore_thread_begin();
  real(arg);
  __tsan_ignore_thread_end();
}

grpc_event TakeOver(grpc_event event) {
  if (event.type == GRPC_OP_COMPLETE && event.tag != nullptr && Enabled()) {
    __tsan_acquire(event.tag);
  }
  return event;
}

}  // namespace

extern "C" {

grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops, void* tag,
                                      void* reserved) {
  static const auto real =
      NextDefinition<grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*)>(
          "grpc_call_start_batch");
  HandOff(tag);
  return real(call, ops, nops, tag, reserved);
}

grpc_call_error grpc_server_request_call(grpc_server* server, grpc_call** call,
                                         grpc_call_details* details,
                                         grpc_metadata_array* request_metadata,
                                         grpc_completion_queue* cq_bound_to_call,
                                         grpc_completion_queue* cq_for_notification,
                                         void* tag_new) {
  static const auto real = NextDefinition<grpc_call_error (*)(
      grpc_server*, grpc_call**, grpc_call_details*, grpc_metadata_array*, grpc_completion_queue*,
      grpc_completion_queue*, void*)>("grpc_server_request_call");
  HandOff(tag_new);
  return real(server, call, details, request_metadata, cq_bound_to_call, cq_for_notification,
              tag_new);
}

grpc_call_error grpc_server_request_registered_call(grpc_server* server, void* registered_method,
                                                    grpc_call** call, gpr_timespec* deadline,
                                                    grpc_metadata_array* request_metadata,
                                                    grpc_byte_buffer** optional_payload,
                                                    grpc_completion_queue* cq_bound_to_call,
                                                    grpc_completion_queue* cq_for_notification,
                                                    void* tag_new) {
  static const auto real = NextDefinition<grpc_call_error (*)(
      grpc_server*, void*, grpc_call**, gpr_timespec*, grpc_metadata_array*, grpc_byte_buffer**,
      grpc_completion_queue*, grpc_completion_queue*, void*)>(
      "grpc_server_request_registered_call");
  HandOff(tag_new);
  return real(server, registered_method, call, deadline, request_metadata, optional_payload,
              cq_bound_to_call, cq_for_notification, tag_new);
}

void grpc_server_shutdown_and_notify(grpc_server* server, grpc_completion_queue* cq, void* tag) {
  static const auto real = NextDefinition<void (*)(grpc_server*, grpc_completion_queue*, void*)>(
      "grpc_server_shutdown_and_notify");
  HandOff(tag);
  real(server, cq, tag);
}

// Slices and byte buffers our code lets go of are freed inside libgrpc (often
// reached by tail calls, so `called_from_lib` does not see the library as the
// caller); what gRPC frees there is its own memory, handed between its
// threads by its own refcounts: TSan ignores the accesses those frees make.
void grpc_slice_unref(grpc_slice slice) {
  static const auto real = NextDefinition<void (*)(grpc_slice)>("grpc_slice_unref");
  IgnoringAccesses(real, slice);
}

void grpc_byte_buffer_destroy(grpc_byte_buffer* buffer) {
  static const auto real = NextDefinition<void (*)(grpc_byte_buffer*)>("grpc_byte_buffer_destroy");
  IgnoringAccesses(real, buffer);
}

grpc_event grpc_completion_queue_next(grpc_completion_queue* cq, gpr_timespec deadline,
                                      void* reserved) {
  static const auto real =
      NextDefinition<grpc_event (*)(grpc_completion_queue*, gpr_timespec, void*)>(
          "grpc_completion_queue_next");
  return TakeOver(real(cq, deadline, reserved));
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag, gpr_timespec deadline,
                                       void* reserved) {
  static const auto real =
      NextDefinition<grpc_event (*)(grpc_completion_queue*, void*, gpr_timespec, void*)>(
          "grpc_completion_queue_pluck");
  return TakeOver(real(cq, tag, deadline, reserved));
}

}  // extern "C"

// A server call's reactions each end by counting down an atomic in grpcpp's
// inline code (instrumented: a release into that atomic); the last count, in
// libgrpc++ or here, schedules OnDone (or OnCancel). Counts made inside
// libgrpc++ are invisible to TSan, so the scheduling acquires the counters,
// as the last fetch_sub would have.
namespace grpc::internal {

void ServerCallbackCall::ScheduleOnDone(bool inline_ondone) {
  static const auto real = NextDefinition<void (*)(ServerCallbackCall*, bool)>(
      "_ZN4grpc8internal18ServerCallbackCall14ScheduleOnDoneEb");
  if (Enabled()) {
    __tsan_acquire(&callbacks_outstanding_);
    __tsan_acquire(&on_cancel_conditions_remaining_);
  }
  real(this, inline_ondone);
}

void ServerCallbackCall::CallOnCancel(ServerReactor* reactor) {
  static const auto real = NextDefinition<void (*)(ServerCallbackCall*, ServerReactor*)>(
      "_ZN4grpc8internal18ServerCallbackCall12CallOnCancelEPNS0_13ServerReactorE");
  if (Enabled()) __tsan_acquire(&on_cancel_conditions_remaining_);
  real(this, reactor);
}

}  // namespace grpc::internal
