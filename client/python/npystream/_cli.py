"""python3 -m npystream {put,fetch,stat,ls,rm} ..."""
import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional, TextIO

import numpy as np

from ._client import Client
from ._errors import Error

_PROGRESS_MIN_BYTES = 16 << 20


class Progress:
    """A one-line progress bar on stderr for transfers of 16 MiB or more."""

    def __init__(self, label: str, quiet: bool = False, stream: TextIO = sys.stderr) -> None:
        self.label, self.quiet, self.stream = label, quiet, stream
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.tty = stream.isatty()
        self.next_pct = 25

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total < _PROGRESS_MIN_BYTES:
            return
        now = time.monotonic()
        pct = 100 * done // max(total, 1)
        if self.tty:
            if now - self.last < 0.1 and done < total:
                return
        elif pct < self.next_pct and done < total:
            return
        else:
            self.next_pct = (pct // 25 + 1) * 25
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        bar = "#" * int(30 * done / max(total, 1))
        line = (f"{self.label} [{bar:<30}] {pct:3d}% {_size(done)}/{_size(total)} "
                f"{_size(rate)}/s")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.shown = True
        self.stream.flush()

    def close(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\n")


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


def _print_info(info: Any) -> None:
    shape = "x".join(str(d) for d in info.shape) or "scalar"
    print(f"{info.handle}\t{info.dtype.str}\t{shape}\t{_size(info.nbytes)}\t{info.device}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m npystream",
                                     description="Move NumPy arrays in and out of npystreamd.")
    parser.add_argument("--target", default=os.environ.get("NPYSTREAM_TARGET", "127.0.0.1:50051"),
                        help="server host:port (default $NPYSTREAM_TARGET or 127.0.0.1:50051)")
    parser.add_argument("--token", default=None, help="bearer token (default $NPYSTREAM_TOKEN)")
    parser.add_argument("--tls-ca", default=os.environ.get("NPYSTREAM_TLS_CA"),
                        help="PEM file of the server's CA: use TLS (default $NPYSTREAM_TLS_CA)")
    parser.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("put", help="store a .npy file")
    p.add_argument("file")
    p.add_argument("--name")
    p.add_argument("--device")
    p.add_argument("--ttl", type=int)
    p = sub.add_parser("fetch", help="write a tensor to a .npy file")
    p.add_argument("handle")
    p.add_argument("-o", "--output", help="file (default HANDLE.npy; - for stdout)")
    p = sub.add_parser("stat", help="show one tensor")
    p.add_argument("handle")
    sub.add_parser("ls", help="list tensors")
    p = sub.add_parser("rm", help="release tensors")
    p.add_argument("handles", nargs="+")
    p = sub.add_parser("infer", help="run a model; save outputs and activations as .npy")
    p.add_argument("model")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy|NAME=@HANDLE",
                   help="an input: a .npy file sent inline, or @HANDLE of a resident tensor")
    p.add_argument("--output", action="append", default=[], help="output to keep (default all)")
    p.add_argument("--capture", action="append", default=[], help="layer activation to return")
    p.add_argument("-o", "--out-dir", default=".", help="where NAME.npy files go")
    sub.add_parser("models", help="list models")
    args = parser.parse_args(argv)

    def pem(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    roots = pem(args.tls_ca) if args.tls_ca else None
    key = pem(args.tls_key) if args.tls_key else None
    chain = pem(args.tls_cert) if args.tls_cert else None
    try:
        with Client(args.target, token=args.token, root_certificates=roots, private_key=key,
                    certificate_chain=chain) as client:
            if args.command == "put":
                arr = np.load(args.file, mmap_mode="r", allow_pickle=False)
                bar = Progress(f"put {os.path.basename(args.file)}", args.quiet)
                info = client.put(arr, name=args.name, device=args.device, ttl=args.ttl,
                                  progress=bar)
                bar.close()
                _print_info(info)
            elif args.command == "fetch":
                out = args.output or f"{args.handle}.npy"
                bar = Progress(f"fetch {args.handle}", args.quiet)
                if out == "-":
                    info = client.fetch_to(args.handle, sys.stdout.buffer, progress=bar)
                else:
                    info = client.fetch_to(args.handle, out, progress=bar)
                bar.close()
                if out != "-":
                    print(f"{out}\t{_size(info.npy_bytes)}")
            elif args.command == "stat":
                _print_info(client.stat(args.handle))
            elif args.command == "ls":
                for info in client.list():
                    _print_info(info)
            elif args.command == "infer":
                inputs: Dict[str, Any] = {}
                for spec in args.input:
                    name, _, value = spec.partition("=")
                    inputs[name] = value[1:] if value.startswith("@") else np.load(value)
                results = client.infer(args.model, inputs, outputs=args.output,
                                       capture=args.capture)
                os.makedirs(args.out_dir, exist_ok=True)
                for name, arr in results.items():
                    path = os.path.join(args.out_dir, f"{name}.npy")
                    np.save(path, arr)
                    print(f"{name}\t{arr.dtype.str}\t{'x'.join(map(str, arr.shape))}\t{path}")
            elif args.command == "models":
                listing = client.list_models()
                for m in listing.models:
                    print(f"{m.name}\t{m.device}\tinputs={','.join(i.name for i in m.inputs)}"
                          f"\toutputs={','.join(m.outputs)}\tlayers={','.join(m.layers)}")
                for e in listing.errors:
                    print(f"{e.name}\tERROR\t{e.message}")
            elif args.command == "rm":
                for h in args.handles:
                    client.release(h)
                    print(f"released {h}")
    except Error as err:
        print(f"npystream: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"npystream: {err}", file=sys.stderr)
        return 1
    return 0
