"""make bench, replicas (#28): one tensor on replica a, fetched by the C++
client path three ways in alternating rounds on the same daemons: from a
directly, through b by a routing client (Topology sends it to a), and
through b with route=False (b relays a's stream). Reports each median with
min..max, the ratios to direct, and, while relaying, b's CPU seconds per GiB
and its peak RSS over idle (sampled, and VmHWM reset by clear_refs)."""
import os
import socket
import statistics
import threading
import time

import numpy as np

import npystream
from proc_stats import daemon_cpu, rss

MIB, GIB = 1 << 20, 1 << 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRss:
    """The highest VmRSS of `pid` while in use, sampled every 5 ms, and its
    VmHWM after a reset (where the kernel allows writing clear_refs)."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid, "VmRSS"))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.hwm_reset:
            self.peak = max(self.peak, rss(self.pid, "VmHWM"))


def replica_cases(bin_dir, quick, start, fmt_rate):
    size, rounds = (256 * MIB, 5) if quick else (GIB, 7)
    ports = {"a": free_port(), "b": free_port()}
    # Replica ids are the ports, so one template reaches each over TCP.
    template = "127.0.0.1:{replica}"
    procs, at = {}, {}
    try:
        for r, port in ports.items():
            procs[r], m = start([os.path.join(bin_dir, "npystreamd"), "--replica-id", str(port),
                                 "--peer-address", template, "--listen", f"127.0.0.1:{port}",
                                 "--http-listen", "", "--store-budget", "4GiB"],
                                r" listening grpc=(\S+)")
            at[r] = m.group(1)
        with npystream.Client(at["a"]) as owner:
            x = np.arange(size // 4, dtype=np.int32)
            handle = owner.put(x, device="cpu").handle
            del x
        clients = {"direct": npystream.Client(at["a"]), "routed": npystream.Client(at["b"]),
                   "relayed": npystream.Client(at["b"], route=False)}
        secs = {k: [] for k in clients}
        b = procs["b"].pid
        relay_cpu, relay_bytes = 0.0, 0
        idle = rss(b, "VmRSS")
        try:
            for c in clients.values():  # warm every path (connections, routes)
                assert c.fetch(handle)[-1] == size // 4 - 1
            with PeakRss(b) as peak:
                for _ in range(rounds):
                    for case, c in clients.items():
                        cpu = daemon_cpu(b)
                        t = time.perf_counter()
                        got = c.fetch(handle)
                        secs[case].append(time.perf_counter() - t)
                        assert got.nbytes == size and got[-1] == size // 4 - 1
                        del got
                        if case == "relayed":
                            relay_cpu += daemon_cpu(b) - cpu
                            relay_bytes += size
        finally:
            for c in clients.values():
                c.close()
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(30)
    out = {"bytes": size, "rounds": rounds}
    for case, v in secs.items():
        out[case] = {"s": v, "median_Bps": size / statistics.median(v),
                     "min_Bps": size / max(v), "max_Bps": size / min(v)}
    for case in ("routed", "relayed"):
        ratios = sorted(d / s for d, s in zip(secs["direct"], secs[case]))
        out[f"{case}_vs_direct_median"] = statistics.median(ratios)
        out[f"{case}_vs_direct_range"] = [ratios[0], ratios[-1]]
    out["relay_cpu_s_per_gib"] = relay_cpu / (relay_bytes / GIB)
    # The peak covers the direct and routed rounds too, which b does not serve:
    # all of it over idle is the relay's (or the client channel's) doing.
    out["relay_peak_rss_over_idle"] = peak.peak - idle
    out["relay_rss_idle"] = idle
    label = f"{size >> 20} MiB"
    for case in ("routed", "relayed"):
        lo, hi = out[f"{case}_vs_direct_range"]
        print(f"{'replicas: ' + case + ' fetch ' + label:<34} "
              f"{fmt_rate(out[case]['median_Bps']):>12} vs direct "
              f"{fmt_rate(out['direct']['median_Bps'])}: {out[f'{case}_vs_direct_median']:.2f}x "
              f"({lo:.2f}..{hi:.2f}, {rounds} alternating rounds)", flush=True)
    print(f"{'replicas: relaying replica b':<34} {out['relay_cpu_s_per_gib']:.2f} CPU s/GiB, "
          f"peak RSS {out['relay_peak_rss_over_idle'] / MIB:.1f} MiB over idle "
          f"({idle / MIB:.0f} MiB; goal <= 64)", flush=True)
    return out
