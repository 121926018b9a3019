"""What /proc says of a process the bench started: its memory and CPU time."""
import os


def rss(pid, field="VmRSS"):
    """Bytes of `field` (VmRSS now, VmHWM the peak) in /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def daemon_cpu(pid):
    """User plus system CPU seconds `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
