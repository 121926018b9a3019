// npystream._native: the C++ client's Fetch and Put for the Python client.
// Fetch: the payload goes from gRPC's received slices (or, on a Unix socket, from the plain fetch
// socket) straight into the ndarray's memory with the GIL released, instead of through one Python
// bytes object per message (grpcio's only way) and a second copy. Put: the stream is written with
// the GIL released, without the thread grpcio starts for each client-streaming call. Optional: the
// package falls back to the grpcio path when this module is absent.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "client/cpp/npystream_client.h"

namespace {

struct NativeClient {
  PyObject_HEAD npystream::Client* client;
};

int NativeClientInit(NativeClient* self, PyObject* args, PyObject* kwargs) {
  static const char* kKeywords[] = {"target", "token", "root_certificates", "plain_fetch", nullptr};
  const char* target = nullptr;
  const char* token = nullptr;
  const char* roots = nullptr;
  Py_ssize_t roots_len = 0;
  int plain_fetch = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|zz#p", const_cast<char**>(kKeywords), &target,
                                   &token, &roots, &roots_len, &plain_fetch)) {
    return -1;
  }
  npystream::ClientOptions options;
  options.target = target;
  if (token != nullptr) options.token = token;
  if (roots != nullptr) options.tls_root_pem.assign(roots, static_cast<size_t>(roots_len));
  options.plain_fetch = plain_fetch != 0;
  options.route = false;  // the Python client routes (a native client per replica)
  auto client = npystream::Client::Connect(options);
  if (!client.ok()) {
    PyErr_SetString(PyExc_ValueError, std::string(client.status().message()).c_str());
    return -1;
  }
  delete self->client;
  self->client = client->release();
  return 0;
}

void NativeClientDealloc(NativeClient* self) {
  delete self->client;
  Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

// fetch(handle, chunk_bytes, alloc, progress=None, index="", dtype="", pool=0)
//   -> (code, message, header); index/dtype/pool: a view (see FetchView).
// alloc(info_bytes) is called once, with the GIL, and returns a writable
// C-contiguous buffer of exactly the payload's size; progress (or None) is
// called as progress(done, total) every 4 MiB and at the end. An exception
// of either stops the fetch (cancelled on the daemon; the rest is not
// received) and is raised. code is the gRPC status code (0: OK).
PyObject* NativeClientFetch(NativeClient* self, PyObject* args) {
  const char* handle_arg = nullptr;
  unsigned int chunk_bytes = 0;
  PyObject* alloc = nullptr;
  PyObject* progress = Py_None;
  const char* index = "";
  const char* dtype = "";
  unsigned int pool = 0;
  if (!PyArg_ParseTuple(args, "sIO|OssI", &handle_arg, &chunk_bytes, &alloc, &progress, &index,
                        &dtype, &pool)) {
    return nullptr;
  }
  npystream::FetchView fetch_view;
  fetch_view.index = index;
  fetch_view.dtype = dtype;
  fetch_view.pool = pool;
  if (self->client == nullptr) {
    PyErr_SetString(PyExc_ValueError, "client is not initialized");
    return nullptr;
  }
  const std::string handle(handle_arg);
  Py_buffer view{};
  bool have_view = false;
  bool failed = false;            // alloc or progress raised, or alloc's buffer is unusable
  std::atomic<bool> stop{false};  // progress raised: the rest is not received
  std::string header;
  absl::StatusOr<npystream::v1::TensorInfo> info;
  Py_BEGIN_ALLOW_THREADS;
  info = self->client->FetchInto(
      handle,
      [&](const npystream::v1::TensorInfo& i,
          absl::string_view npy_header) -> absl::StatusOr<char*> {
        header.assign(npy_header.data(), npy_header.size());
        const std::string bytes = i.SerializeAsString();
        PyGILState_STATE gil = PyGILState_Ensure();
        PyObject* buffer =
            PyObject_CallFunction(alloc, "y#", bytes.data(), static_cast<Py_ssize_t>(bytes.size()));
        if (buffer == nullptr) {
          failed = true;
        } else if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
          failed = true;
        } else if (static_cast<uint64_t>(view.len) != i.nbytes()) {
          PyBuffer_Release(&view);
          PyErr_SetString(PyExc_ValueError, "alloc returned a buffer of the wrong size");
          failed = true;
        } else {
          have_view = true;
        }
        Py_XDECREF(buffer);
        PyGILState_Release(gil);
        if (failed) return absl::CancelledError("alloc failed");
        return static_cast<char*>(view.buf);
      },
      [&](uint64_t done, uint64_t total) {
        // A raising callback stops the fetch (the call is cancelled on the
        // daemon); its exception is raised.
        if (progress == Py_None || failed) return;
        PyGILState_STATE gil = PyGILState_Ensure();
        PyObject* r = PyObject_CallFunction(progress, "KK", static_cast<unsigned long long>(done),
                                            static_cast<unsigned long long>(total));
        if (r == nullptr) {
          failed = true;
          stop.store(true);
        }
        Py_XDECREF(r);
        PyGILState_Release(gil);
      },
      chunk_bytes, fetch_view, &stop);
  Py_END_ALLOW_THREADS;
  if (have_view) PyBuffer_Release(&view);
  if (failed) return nullptr;  // alloc's exception is set
  if (!info.ok()) {
    const std::string message(info.status().message());
    return Py_BuildValue("(is#y#)", static_cast<int>(info.status().code()), message.data(),
                         static_cast<Py_ssize_t>(message.size()), "", Py_ssize_t{0});
  }
  return Py_BuildValue("(is#y#)", 0, "", Py_ssize_t{0}, header.data(),
                       static_cast<Py_ssize_t>(header.size()));
}

// put(name, device, ttl_seconds, npy_header, payload) -> (code, message, info)
// Streams a Put of the .npy header then the C-contiguous payload buffer (kept
// exported, so unchanged, meanwhile). info: the serialized TensorInfo when
// code is 0 (OK), else empty.
PyObject* NativeClientPut(NativeClient* self, PyObject* args) {
  const char* name = nullptr;
  const char* device = nullptr;
  unsigned int ttl_seconds = 0;
  Py_buffer header{};
  Py_buffer payload{};
  if (!PyArg_ParseTuple(args, "ssIy*y*", &name, &device, &ttl_seconds, &header, &payload)) {
    return nullptr;
  }
  if (self->client == nullptr) {
    PyBuffer_Release(&header);
    PyBuffer_Release(&payload);
    PyErr_SetString(PyExc_ValueError, "client is not initialized");
    return nullptr;
  }
  npystream::PutOptions options;
  options.name = name;
  options.device = device;
  options.ttl_seconds = ttl_seconds;
  const absl::string_view npy_header(static_cast<const char*>(header.buf),
                                     static_cast<size_t>(header.len));
  const absl::string_view data(static_cast<const char*>(payload.buf),
                               static_cast<size_t>(payload.len));
  absl::StatusOr<npystream::v1::TensorInfo> info;
  Py_BEGIN_ALLOW_THREADS;
  info = self->client->PutParts(npy_header, data, options);
  Py_END_ALLOW_THREADS;
  PyBuffer_Release(&header);
  PyBuffer_Release(&payload);
  if (!info.ok()) {
    const std::string message(info.status().message());
    return Py_BuildValue("(is#y#)", static_cast<int>(info.status().code()), message.data(),
                         static_cast<Py_ssize_t>(message.size()), "", Py_ssize_t{0});
  }
  const std::string bytes = info->SerializeAsString();
  return Py_BuildValue("(is#y#)", 0, "", Py_ssize_t{0}, bytes.data(),
                       static_cast<Py_ssize_t>(bytes.size()));
}

PyMethodDef kNativeClientMethods[] = {
    {"fetch", reinterpret_cast<PyCFunction>(NativeClientFetch), METH_VARARGS,
     "fetch(handle, chunk_bytes, alloc, progress=None, index='', dtype='', pool=0) -> "
     "(code, message, npy_header)"},
    {"put", reinterpret_cast<PyCFunction>(NativeClientPut), METH_VARARGS,
     "put(name, device, ttl_seconds, npy_header, payload) -> (code, message, info)"},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject kNativeClientType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_native",
                       "npystream's C++ Fetch and Put paths for the Python client.", -1, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__native() {
  kNativeClientType.tp_name = "npystream._native.Client";
  kNativeClientType.tp_basicsize = sizeof(NativeClient);
  kNativeClientType.tp_flags = Py_TPFLAGS_DEFAULT;
  kNativeClientType.tp_new = PyType_GenericNew;
  kNativeClientType.tp_init = reinterpret_cast<initproc>(NativeClientInit);
  kNativeClientType.tp_dealloc = reinterpret_cast<destructor>(NativeClientDealloc);
  kNativeClientType.tp_methods = kNativeClientMethods;
  if (PyType_Ready(&kNativeClientType) < 0) return nullptr;
  PyObject* module = PyModule_Create(&kModule);
  if (module == nullptr) return nullptr;
  Py_INCREF(&kNativeClientType);
  if (PyModule_AddObject(module, "Client", reinterpret_cast<PyObject*>(&kNativeClientType)) < 0) {
    Py_DECREF(&kNativeClientType);
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
