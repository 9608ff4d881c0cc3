"""The C packages: the .deb (unpacked into a scratch root; never installed on this machine) and the .tar.gz, each
consumed through pkg-config and find_package, and a worker built against it exporting to the receiver."""
import json
import os
import re
import tarfile

import pytest
from conftest import DIST, REPO, VERSION, WORK, assert_arrived, run

DEB = DIST / ("libpolytel_%s_amd64.deb" % VERSION)
TGZ = DIST / ("libpolytel-%s-linux-x86_64.tar.gz" % VERSION)


@pytest.fixture(scope="module")
def deb_root():
    root = WORK / "test-deb-root"
    run(["rm", "-rf", root])
    run(["dpkg-deb", "-x", DEB, root])
    return root / "usr"


@pytest.fixture(scope="module")
def tgz_root():
    dest = WORK / "test-tgz-root"
    run(["rm", "-rf", dest])
    dest.mkdir(parents=True)
    with tarfile.open(TGZ) as tf:
        tf.extractall(dest)
    (top,) = list(dest.iterdir())
    return top


def test_deb_control():
    fields = {k: run(["dpkg-deb", "-f", DEB, k]).stdout.strip() for k in ("Package", "Version", "Depends", "Section")}
    assert fields["Package"] == "libpolytel" and fields["Version"] == VERSION
    # Runtime dependencies from dpkg-shlibdeps, development ones for polytel.pc / polytelConfig.cmake.
    for dep in ("libuv1 ", "libcurl4 ", "libisal2 ", "libzstd1 ", "libc6 ", "libuv1-dev", "libzstd-dev", "pkg-config"):
        assert dep in fields["Depends"] + " ", fields["Depends"]
    files = run(["dpkg-deb", "-c", DEB]).stdout
    for f in ("./usr/include/polytel.h", "./usr/include/polytel/uv.h", "./usr/include/polytel/version.h",
              "./usr/lib/libpolytel.so.0.", "./usr/lib/libpolytel.a", "./usr/lib/pkgconfig/polytel.pc",
              "./usr/lib/cmake/polytel/polytelConfig.cmake", "./usr/lib/cmake/polytel/polytelConfigVersion.cmake"):
        assert f in files, f


def build_worker(prefix, out):
    """tests/support/programs/worker_c.c against the package, through its pkg-config file (rpath to its libdir)."""
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "polytel", "libuv"], env=env).stdout.split()
    libdir = run(["pkg-config", "--variable=libdir", "polytel"], env=env).stdout.strip()
    assert os.path.realpath(libdir) == os.path.realpath(prefix / "lib"), libdir  # the .pc finds its own prefix
    assert run(["pkg-config", "--modversion", "polytel"], env=env).stdout.strip() == VERSION
    run(["cc", "-O1", REPO / "tests" / "support" / "programs" / "worker_c.c", "-o", out, "-Wl,-rpath," + libdir] + flags + ["-lpthread"])
    return out


def run_worker(exe, receiver, service):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POLYTEL_", "TELEMETRY_"))}
    env.update(TELEMETRY_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME=service,
               OTEL_BSP_SCHEDULE_DELAY="100", OTEL_BLRP_SCHEDULE_DELAY="100")
    w = run([exe, "--threads", "1", "--events", "2", "--shutdown-ms", "30000"], env=env, timeout=120)
    return json.loads(next(ln for ln in w.stdout.splitlines() if ln.startswith("{")))


@pytest.mark.parametrize("kind", ["deb", "tgz"])
def test_worker_built_against_the_package_exports(kind, request, receiver, tmp_path):
    prefix = request.getfixturevalue(kind + "_root")
    exe = build_worker(prefix, tmp_path / "worker_c")
    ldd = run(["ldd", exe]).stdout
    resolved = re.search(r"libpolytel\.so\.0 => (\S+)", ldd).group(1)
    assert os.path.realpath(resolved) == os.path.realpath(prefix / "lib" / "libpolytel.so.0"), ldd
    service = "dist-c-" + kind
    st = run_worker(exe, receiver, service)
    assert (st["phase2"], st["shutdown_rc"]) == ("full", 0), st
    # 2 events of 2 spans and a log each, all settled by the shutdown.
    assert st["recorded"] == 6 and st["exported"] + st["dropped"] + st["unconfirmed"] + st["pending"] == 6, st
    assert_arrived(receiver, service, ["outer", "inner"] * 2, ["event 0 from thread 0", "event 1 from thread 0"], "c")


@pytest.mark.parametrize("kind", ["deb", "tgz"])
def test_find_package_consumer(kind, request, tmp_path):
    """examples/c-consumer/cmake: find_package(polytel) -> polytel::polytel, built out of the source tree."""
    prefix = request.getfixturevalue(kind + "_root")
    run(["cmake", "-S", REPO / "examples" / "c-consumer" / "cmake", "-B", tmp_path / "b", "-DCMAKE_PREFIX_PATH=%s" % prefix])
    run(["cmake", "--build", tmp_path / "b"])
    out = run([tmp_path / "b" / "consumer-cmake"], env=dict(os.environ, POLYTEL_CONSOLE="stdout", NO_COLOR="1")).stdout
    assert re.search(r"INFO consumer: hello from c-consumer, version %s\b" % re.escape(VERSION), out), out
    assert "shutdown: POLYTEL_OK" in out
