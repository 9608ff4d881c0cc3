"""The wheels and the sdist: manylinux and audited, installed per CPython 3.9-3.13 into a fresh venv with no
compiler on PATH, a worker exporting to the receiver, and bindings/python/tests run against each install."""
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import DIST, PYTHONS, REPO, VERSION, WORK, assert_arrived, result_line, run, unshare_hiding, user_env

from otlp_receiver import Receiver

VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
# Test dependencies of bindings/python/tests: binary wheels only, so nothing in a venv ever compiles.
TEST_DEPS = ["pytest", "opentelemetry-proto", "protobuf", "zstandard"]  # zstandard: the receiver decodes zstd bodies

WORKER = """
import json, sys, polytel
phase1 = polytel.phase()
with polytel.span("dist.py.job", version=sys.version.split()[0]):
    polytel.info("hello from the wheel")
res = polytel.bootstrap_worker()
rc = polytel.shutdown(timeout_ms=10000)
print("RESULT " + json.dumps({"file": polytel.__file__, "version": polytel.__version__, "phase1": phase1,
                              "status": res["status"], "rc": rc}))
"""


def tag(v):
    return "cp" + v.replace(".", "")


def wheel_for(v):
    (w,) = DIST.glob("polytel-%s-%s-%s-manylinux_*_x86_64.whl" % (VERSION, tag(v), tag(v)))
    return w


def install_and_test(v, toolless_bin, rx):
    """Fresh venv for CPython v, the wheel from dist/ (no index, binary only), the worker, the binding's suite."""
    out = {"version": v}
    venv = WORK / ("test-venv-" + v)
    run(["rm", "-rf", venv])
    env = user_env([venv / "bin", toolless_bin])
    run([PYTHONS[v], "-m", "venv", venv], env=env)
    pip = [venv / "bin" / "python", "-m", "pip", "-q", "--disable-pip-version-check"]
    run(pip + ["install", "--only-binary", ":all:"] + TEST_DEPS, env=env)
    run(pip + ["install", "--no-index", "--only-binary", ":all:", "--find-links", DIST, "polytel==" + VERSION], env=env)
    service = "dist-py-" + v
    w = run([venv / "bin" / "python", "-c", WORKER], cwd=WORK, timeout=120,
            env=dict(env, TELEMETRY_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, OTEL_SERVICE_NAME=service))
    out["worker"] = result_line(w.stdout)
    out["stderr"] = w.stderr
    # The binding's own suite, importing the installed wheel (REPO has no top-level polytel package).
    s = run([venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "bindings/python/tests"],
            cwd=REPO, env=env, timeout=900, check=False)
    out["suite_rc"], out["suite_out"] = s.returncode, s.stdout[-4000:] + s.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def installs(toolless_bin):
    """Every CPython at once, two at a time (2 cores); one receiver for their workers."""
    missing = [v for v in VERSIONS if v not in PYTHONS or not PYTHONS[v]]
    assert not missing, "CPython %s not found (mk/dist.mk: DIST_PYTHON_X.Y)" % missing
    rx = Receiver().start()
    try:
        with ThreadPoolExecutor(max_workers=2) as ex:
            futs = {v: ex.submit(install_and_test, v, toolless_bin, rx) for v in VERSIONS}
            results = {}
            for v, f in futs.items():
                try:
                    results[v] = f.result()
                except Exception as e:  # reported by that version's test
                    results[v] = {"error": e}
        for v in VERSIONS:
            if "error" not in results[v]:
                results[v]["arrived"] = assert_arrived(rx, "dist-py-" + v, ["dist.py.job"], ["hello from the wheel"],
                                                       "python")
        return results
    finally:
        rx.stop()


def test_one_manylinux_wheel_per_cpython():
    names = sorted(p.name for p in DIST.glob("polytel-*.whl"))
    assert len(names) == len(VERSIONS), names
    for v in VERSIONS:
        assert re.fullmatch(r"polytel-%s-%s-%s-manylinux_2_\d+_x86_64\.whl" % (re.escape(VERSION), tag(v), tag(v)),
                            wheel_for(v).name)


@pytest.mark.parametrize("v", VERSIONS)
def test_auditwheel_finds_nothing_outside_the_policy(v):
    w = wheel_for(v)
    show = run([REPO / ".venv" / "bin" / "auditwheel", "show", w]).stdout
    tagname = re.search(r"manylinux_2_\d+_x86_64", w.name).group(0)
    assert 'consistent with\nthe following platform tag: "%s"' % tagname in show or (
        'consistent with the following platform tag: "%s"' % tagname in " ".join(show.split()))
    assert "external shared libraries" not in show, show  # what the policy does not allow would be listed
    with zipfile.ZipFile(w) as z:
        names = z.namelist()
    # libuv, libzstd, libisal are inside (Debian's libuv_a.a and libzstd.a are not PIC: auditwheel vendors the
    # shared libraries under unique names); libcurl is not.
    for lib in ("libuv", "libzstd", "libisal"):
        assert any(re.fullmatch(r"polytel\.libs/%s-[0-9a-f]+\.so\.\d+(\.\d+)*" % lib, n) for n in names), (lib, names)
    assert not any("curl" in n for n in names), names


@pytest.mark.parametrize("v", VERSIONS)
def test_wheel_installs_without_a_compiler_and_exports(installs, v):
    r = installs[v]
    if "error" in r:
        raise r["error"]
    w = r["worker"]
    assert w["file"].startswith(str(WORK / ("test-venv-" + v))), w["file"]
    assert (w["version"], w["phase1"], w["status"], w["rc"]) == (VERSION, "deferred", "started", 0)
    spans = [s for s in r["arrived"]["spans"] if s["service"] == "dist-py-" + v]
    assert spans[0]["attributes"]["version"].startswith(v + ".")


@pytest.mark.parametrize("v", VERSIONS)
def test_binding_suite_passes_against_the_installed_wheel(installs, v):
    r = installs[v]
    if "error" in r:
        raise r["error"]
    assert r["suite_rc"] == 0, r["suite_out"]
    m = re.search(r"(\d+) passed", r["suite_out"])
    assert m and int(m.group(1)) >= 40, r["suite_out"]
    # test_packaging builds from source (needs `build` and a compiler): skipped here, by design.
    assert "failed" not in r["suite_out"].splitlines()[-1], r["suite_out"]


def test_sdist_carries_the_core_and_its_list():
    import tarfile

    with tarfile.open(DIST / ("polytel-%s.tar.gz" % VERSION)) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
        pkg_info = tf.extractfile("polytel-%s/PKG-INFO" % VERSION).read().decode()
    assert "\nVersion: %s\n" % VERSION in pkg_info
    listed = [ln.split("#")[0].split() for ln in (REPO / "core" / "sources.txt").read_text().splitlines()]
    for words in filter(None, listed):
        assert "_core/core/" + words[0] in names, words[0]
    assert "_core/core/include/polytel/version.h" in names


def test_sdist_names_the_missing_dev_packages(tmp_path):
    """Where libuv's and libcurl's headers are not installed, the build stops with one message naming both."""
    curl_dir = next(p for p in ("/usr/include/x86_64-linux-gnu/curl", "/usr/include/curl") if os.path.isdir(p))
    hide = unshare_hiding(["/usr/include/uv", curl_dir])  # uv.h then fails on its own includes
    if hide is None:
        pytest.skip("mount namespaces (unshare -m) are not available here")
    r = run(hide + [WORK / "venv-3.11" / "bin" / "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", tmp_path, DIST / ("polytel-%s.tar.gz" % VERSION)], check=False, cwd=tmp_path)
    text = r.stdout + r.stderr
    assert r.returncode != 0
    assert "polytel: cannot build the extension: missing libuv (uv.h), libcurl (curl/curl.h)." in text, text
    assert "apt-get install libuv1-dev libcurl4-openssl-dev" in text, text
    assert "libzstd (" not in text and "libisal (" not in text  # what is installed is not listed


def test_missing_libcurl_is_one_line_naming_it(installs, receiver):
    """libcurl is loaded at phase 2: without it, one clear line, and phase 1 still works."""
    if "error" in installs["3.12"]:
        raise installs["3.12"]["error"]
    # Every libcurl build the loader knows (Debian has OpenSSL, GnuTLS and NSS ones): lazy_curl.c tries two.
    libs = sorted({os.path.realpath(ln.split("=> ")[1]) for ln in run(["ldconfig", "-p"]).stdout.splitlines()
                   if "libcurl" in ln and ".so.4" in ln and "=> " in ln})
    hide = unshare_hiding(libs)
    if hide is None or not libs:
        pytest.skip("mount namespaces (unshare -m) are not available here")
    venv = WORK / "test-venv-3.12"
    code = "import polytel; polytel.info('phase 1 works'); polytel.bootstrap_worker(); polytel.shutdown(timeout_ms=1000)"
    r = run(hide + [venv / "bin" / "python", "-c", code], cwd=WORK, timeout=120, check=False,
            env=user_env([venv / "bin", "/usr/bin"], TELEMETRY_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint))
    assert r.returncode == 0, r.stderr
    assert "INFO app: phase 1 works" in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "libcurl" in ln]
    assert len(lines) == 1, r.stderr
    assert re.search(r"polytel: OTLP export needs libcurl, which cannot be loaded \((\S*/)?libcurl\.so\.4: .+\); install it "
                     r"\(Debian/Ubuntu: apt-get install libcurl4, Fedora: dnf install libcurl\)$", lines[0]), lines[0]
