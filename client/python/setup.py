"""Build steps pyproject.toml cannot express: the gRPC stubs generated from
proto/ at build time (never committed), and the optional native fetch module
(npystream._native), compiled when gRPC's C++ development files are present."""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO = os.path.join(ROOT, "proto")
PROTOS = [os.path.join(PROTO, "npystream", "v1", p) for p in ("tensors.proto", "inference.proto")]


def protoc(out, plugin, kind):
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", f"-I{PROTO}", f"--{kind}_out={out}", f"--grpc_out={out}",
                    f"--plugin=protoc-gen-grpc={shutil.which(plugin)}", *PROTOS], check=True)


class BuildPy(build_py):
    def run(self):
        super().run()
        protoc(self.build_lib, "grpc_python_plugin", "python")
        open(os.path.join(self.build_lib, "npystream", "v1", "__init__.py"), "a").close()


def pkg_config(*args):
    return subprocess.run(["pkg-config", *args], capture_output=True, text=True,
                          check=True).stdout.split()


class BuildExt(build_ext):
    """npystream._native when it can be built; otherwise nothing (grpcio path)."""

    PACKAGES = ["grpc++", "protobuf", "absl_statusor", "absl_synchronization", "absl_strings"]

    def run(self):
        tools = all(shutil.which(t) for t in ("protoc", "grpc_cpp_plugin", "pkg-config"))
        if not tools or subprocess.run(["pkg-config", "--exists", *self.PACKAGES]).returncode:
            print("npystream: no gRPC C++ development files; fetch uses grpcio only",
                  file=sys.stderr)
            self.extensions = []
            return
        gen = os.path.join(self.build_temp, "gen")
        protoc(gen, "grpc_cpp_plugin", "cpp")
        for ext in self.extensions:
            ext.sources += [os.path.join(gen, "npystream", "v1", f"{s}{t}")
                            for s in ("tensors", "inference") for t in (".pb.cc", ".grpc.pb.cc")]
            ext.include_dirs += [gen, ROOT]
            ext.extra_compile_args += ["-std=c++17", "-Wno-missing-field-initializers",
                                       *pkg_config("--cflags", *self.PACKAGES)]
            ext.extra_link_args += pkg_config("--libs", *self.PACKAGES)
        super().run()


def rel(*parts):
    return os.path.relpath(os.path.join(ROOT, *parts), HERE)


native = Extension(
    "npystream._native",
    sources=[rel("client", "python", "native", "npystream_native.cc"),
             rel("client", "cpp", "npystream_client.cc"),
             rel("proto", "wire", "wire_format.cc"), rel("proto", "wire", "channel_args.cc"),
             rel("proto", "wire", "socket_fetch.cc"),
             rel("base", "process_tuning.cc"), rel("base", "file_util.cc")],
    language="c++")

setup(ext_modules=[native], cmdclass={"build_py": BuildPy, "build_ext": BuildExt})
