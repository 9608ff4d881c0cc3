"""conftest — the release artefacts of `make dist`, installed as a user would, with the build tools off PATH."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

from pytest_fixtures import receiver, receiver_factory  # noqa: E402,F401

DIST = Path(os.environ.get("POLYTEL_DIST", REPO / "dist"))
WORK = Path(os.environ.get("POLYTEL_DIST_WORK", REPO / "build" / "dist"))
VERSION = os.environ.get("POLYTEL_VERSION", "")
# "3.9=/path/python3 3.10=..." (mk/dist.mk)
PYTHONS = dict(p.split("=", 1) for p in os.environ.get("POLYTEL_DIST_PYTHONS", "").split() if "=" in p)

# What a user's machine need not have: compilers, linkers, build drivers, pkg-config, emscripten.
BUILD_TOOL = re.compile(
    r"^(cc|c\+\+|c89|c99|cpp|gcc|g\+\+|tcc|clang.*|.*-gcc(-[\d.]+)?|.*-g\+\+(-[\d.]+)?|.*-cpp(-[\d.]+)?|gcc-.*|g\+\+-.*"
    r"|ld|ld\..*|.*-ld|.*-ld\..*|as|.*-as|lld.*|wasm-ld|make|gmake|cmake|ninja|pkg-config|pkgconf|.*-pkg-config"
    r"|em(cc|\+\+|ar|ranlib|configure|make|cmake|size|strip|-config).*|emsdk|rustc|cargo)$"
)
SCRUB = ("OTEL_", "POLYTEL_", "TELEMETRY_")


def pytest_configure(config):
    if not VERSION:
        pytest.exit("tests/dist runs through `make test-dist` (it builds dist/ and passes its paths)", returncode=2)


def bin_without(dest: Path, hide) -> Path:
    """A directory of links to every program on the default PATH except those `hide` matches."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if hide(name) or (dest / name).exists() or not (os.path.isfile(p) and os.access(p, os.X_OK)):
                continue
            (dest / name).symlink_to(p)
    return dest


@pytest.fixture(scope="session")
def toolless_bin():
    """PATH entries with no compiler, linker, make, pkg-config or emscripten."""
    d = bin_without(WORK / "test-bin-toolless", BUILD_TOOL.match)
    for tool in ("cc", "gcc", "make", "pkg-config", "emcc", "ld"):
        assert shutil.which(tool, path=str(d)) is None, tool
    return d


@pytest.fixture(scope="session")
def no_pkg_config_bin():
    """PATH entries with a compiler but no pkg-config (the source gem must not need it)."""
    d = bin_without(WORK / "test-bin-no-pkg-config", lambda n: re.match(r"^(.*-)?pkg-?conf(ig)?$", n) is not None)
    assert shutil.which("pkg-config", path=str(d)) is None and shutil.which("cc", path=str(d))
    return d


def user_env(path_dirs, **extra):
    """The environment of a user's shell: no polytel/OTel settings, PATH as given, CC unusable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    for k in ("PKG_CONFIG_PATH", "CPATH", "LIBRARY_PATH", "LD_LIBRARY_PATH", "GEM_HOME", "GEM_PATH", "RUBYOPT",
              "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH", "EM_CONFIG", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(k, None)
    env.update(PATH=":".join(str(p) for p in path_dirs), CC="/bin/false", CXX="/bin/false", NO_COLOR="1",
               OTEL_BSP_SCHEDULE_DELAY="100", OTEL_BLRP_SCHEDULE_DELAY="100", OTEL_METRIC_EXPORT_INTERVAL="200")
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run(cmd, env=None, cwd=None, timeout=600, check=True):
    """A command's result; a failure shows its output. The timeout only stops a hung step."""
    r = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d)\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(str(c) for c in cmd), r.returncode, r.stdout[-6000:], r.stderr[-6000:]))
    return r


def result_line(stdout, prefix="RESULT "):
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix):])
    raise AssertionError("no %r line in:\n%s" % (prefix, stdout))


def assert_arrived(receiver, service, spans, logs, sdk_language):
    """The worker's spans and logs reached the receiver from this service, resource naming polytel's version."""
    got = receiver.wait_for(
        lambda g: {s["name"] for s in g["spans"] if s["service"] == service} >= set(spans)
        and {x["body"] for x in g["logs"] if x["service"] == service} >= set(logs),
        timeout=30,
    )
    mine = [s for s in got["spans"] if s["service"] == service]
    assert sorted(s["name"] for s in mine) == sorted(spans)
    assert sorted(x["body"] for x in got["logs"] if x["service"] == service) == sorted(logs)
    for item in mine:
        assert item["resource"]["telemetry.sdk.version"] == VERSION
        assert item["resource"]["telemetry.sdk.language"] == sdk_language
    receiver.assert_no_errors()
    return got


def unshare_hiding(paths):
    """A command prefix that runs in a private mount namespace with each path covered by an empty tmpfs or
    /dev/null (as on a machine without those packages); None where namespaces are not available."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        return None
    mounts = " && ".join(
        ("mount -t tmpfs none %s" if os.path.isdir(p) else "mount --bind /dev/null %s") % p for p in paths
    )
    return ["unshare", "-m", "sh", "-c", mounts + ' && exec "$@"', "sh"]
