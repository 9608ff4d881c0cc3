"""The gems: the source gem installs with Ruby's headers and a compiler only (no libpolytel, no pkg-config),
the x86_64-linux gem with no compiler at all; each into a fresh GEM_HOME, a worker exporting to the receiver."""
import glob
import os
import subprocess

import pytest
from conftest import DIST, VERSION, WORK, assert_arrived, result_line, run, unshare_hiding, user_env

SRC_GEM = DIST / ("polytel-%s.gem" % VERSION)
PLATFORM_GEM = DIST / ("polytel-%s-x86_64-linux.gem" % VERSION)

WORKER = r"""
require "json"
require "polytel"
phase1 = Polytel.phase
Polytel.span("dist.rb.job", ruby: RUBY_VERSION) { Polytel.info("hello from the gem") }
res = Polytel.bootstrap_worker
rc = Polytel.shutdown(10_000)
spec = Gem.loaded_specs["polytel"]
puts "RESULT " + JSON.dump(version: Polytel::VERSION, core: Polytel::CORE_VERSION, phase1: phase1, status: res[:status] || res["status"],
                           rc: rc, gem_dir: spec.full_gem_path, platform: spec.platform.to_s,
                           ext: $LOADED_FEATURES.grep(/polytel_ext/).first)
"""


def gem_install(gem, home, env):
    run(["rm", "-rf", home])
    return run(["gem", "install", "--local", "--no-document", "--install-dir", home, gem], env=env, timeout=900)


def run_worker(home, path, receiver, service):
    env = user_env(path, GEM_HOME=home, TELEMETRY_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                   OTEL_SERVICE_NAME=service)
    w = run(["ruby", "-e", WORKER], env=env, cwd=WORK, timeout=120)
    return result_line(w.stdout)


def check_worker(r, home, platform):
    assert r["gem_dir"].startswith(str(home)), r
    assert (r["version"], r["core"], r["phase1"], r["status"], r["rc"]) == (VERSION, VERSION, "deferred", "started", True)
    assert r["platform"] == platform
    assert r["ext"].startswith(str(home)), r


def test_source_gem_builds_with_a_compiler_and_no_pkg_config(receiver, no_pkg_config_bin):
    home = WORK / "test-gem-source"
    out = gem_install(SRC_GEM, home, user_env([no_pkg_config_bin], CC=None, CXX=None))
    log = "".join(open(f).read() for f in glob.glob(str(home / "extensions" / "**" / "gem_make.out"), recursive=True))
    assert "polytel: building the bundled core %s" % VERSION in log, out.stdout + log
    r = run_worker(home, [no_pkg_config_bin], receiver, "dist-rb-source")
    check_worker(r, home, "ruby")
    assert_arrived(receiver, "dist-rb-source", ["dist.rb.job"], ["hello from the gem"], "ruby")


def test_platform_gem_installs_with_no_compiler(receiver, toolless_bin):
    home = WORK / "test-gem-platform"
    gem_install(PLATFORM_GEM, home, user_env([toolless_bin]))
    # Nothing was compiled: the gem has no extension to build, the prebuilt one is in lib/.
    assert not glob.glob(str(home / "extensions" / "**" / "*.so"), recursive=True)
    r = run_worker(home, [toolless_bin], receiver, "dist-rb-platform")
    check_worker(r, home, "x86_64-linux")
    assert r["ext"] == os.path.join(r["gem_dir"], "lib", "polytel", "polytel_ext.so")
    # libuv, libisal and libzstd travel inside the gem (RUNPATH $ORIGIN); libcurl and libc are the system's.
    ldd = run(["ldd", r["ext"]]).stdout
    for lib in ("libuv.so.1", "libisal.so.2", "libzstd.so.1"):
        assert "%s => %s/lib/polytel/%s" % (lib, r["gem_dir"], lib) in ldd, ldd
    assert_arrived(receiver, "dist-rb-platform", ["dist.rb.job"], ["hello from the gem"], "ruby")


def test_source_gem_names_the_missing_dev_packages():
    curl_dir = next(p for p in ("/usr/include/x86_64-linux-gnu/curl", "/usr/include/curl") if os.path.isdir(p))
    hide = unshare_hiding(["/usr/include/uv", curl_dir])
    if hide is None:
        pytest.skip("mount namespaces (unshare -m) are not available here")
    home = WORK / "test-gem-missing"
    subprocess.run(["rm", "-rf", str(home)])
    env = user_env(["/usr/bin", "/bin"], CC=None, CXX=None)
    r = run(hide + ["gem", "install", "--local", "--no-document", "--install-dir", home, SRC_GEM], env=env,
            check=False, timeout=900)
    text = r.stdout + r.stderr
    assert r.returncode != 0
    assert "polytel: cannot build the extension: missing libuv (uv.h), libcurl (curl/curl.h)." in text, text
    assert "sudo apt-get install libuv1-dev libcurl4-openssl-dev" in text, text
