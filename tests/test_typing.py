"""The Python client's type hints are checked, not decoration: mypy --strict
(Debian's mypy, the package's own [tool.mypy] settings) passes on the
package and on a user's program (tests/typing/uses_api.py), and reports each
wrong call in a copy of it. make typecheck runs the package part alone."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "client", "python")


def mypy(*args):
    if shutil.which("mypy") is None:
        pytest.skip("mypy is not installed (scripts/deps.sh installs it)")
    return subprocess.run(["mypy", "--config-file", os.path.join(PACKAGE, "pyproject.toml"),
                           "--no-error-summary", *args], cwd=PACKAGE, capture_output=True,
                          text=True, timeout=300)


def test_the_package_and_a_users_program_pass_mypy_strict():
    ok = mypy("npystream", os.path.join(ROOT, "tests", "typing", "uses_api.py"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert os.path.exists(os.path.join(PACKAGE, "npystream", "py.typed"))


def test_wrong_calls_are_reported(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import npystream\n"
        "from npystream import aio\n"
        "c = npystream.Client(50051)\n"                       # target is a str
        "c.fetch(7)\n"                                        # handle is a str
        "n: int = c.stat('x')\n"                              # a TensorInfo, not an int
        "c.put([1, 2], ttl='soon')\n"                         # ttl is a number
        "async def f(a: aio.Client) -> None:\n"
        "    x: bytes = await a.fetch('x')\n")                # an ndarray, not bytes
    bad = mypy(str(wrong))
    lines = [line for line in bad.stdout.splitlines() if ": error:" in line]
    assert bad.returncode == 1 and {int(line.split(":")[1]) for line in lines} == {3, 4, 5, 6, 8}, \
        bad.stdout
