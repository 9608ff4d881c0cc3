# setup.py — builds polytel._polytel with the core's C sources compiled in (setuptools, PEP 517).
#
# From the repository, the core (../../core and the root CMakeLists.txt, which holds the one
# version) is copied into _core/ first, so an sdist carries it; from an sdist, _core/ is
# already there. The extension links the system libuv, libcurl, libdeflate and libzstd (pkg-config).
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
CORE_COPY = os.path.join(HERE, "_core")
os.chdir(HERE)  # setuptools wants source paths relative to the project


def sync_core():
    """Refresh _core/ from the repository when building inside it; keep the copy otherwise."""
    src = os.path.join(REPO, "core")
    if not (os.path.isfile(os.path.join(src, "include", "polytel.h")) and os.path.isfile(os.path.join(REPO, "CMakeLists.txt"))):
        return
    dst = os.path.join(CORE_COPY, "core")
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    for sub in ("src", "include"):
        shutil.copytree(os.path.join(src, sub), os.path.join(dst, sub), ignore=shutil.ignore_patterns("*.o", "*~"))
    shutil.copy2(os.path.join(REPO, "CMakeLists.txt"), os.path.join(CORE_COPY, "CMakeLists.txt"))
    shutil.copy2(os.path.join(src, "CMakeLists.txt"), os.path.join(dst, "CMakeLists.txt"))


def core_version():
    with open(os.path.join(CORE_COPY, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(\s*polytel\s+VERSION\s+(\d+)\.(\d+)\.(\d+)", f.read())
    if not m:
        sys.exit("polytel: no `project(polytel VERSION x.y.z)` in _core/CMakeLists.txt")
    return tuple(m.groups())


def write_version_h(major, minor, patch):
    """What CMake's configure_file makes of core/include/polytel/version.h.in."""
    tpl = os.path.join(CORE_COPY, "core", "include", "polytel", "version.h.in")
    with open(tpl, encoding="utf-8") as f:
        text = f.read()
    subs = {
        "PROJECT_VERSION_MAJOR": major,
        "PROJECT_VERSION_MINOR": minor,
        "PROJECT_VERSION_PATCH": patch,
        "PROJECT_VERSION": "%s.%s.%s" % (major, minor, patch),
    }
    text = re.sub(r"@(\w+)@", lambda m: subs.get(m.group(1), m.group(0)), text)
    out_dir = os.path.join(CORE_COPY, "generated", "polytel")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "version.h")
    old = open(out, encoding="utf-8").read() if os.path.exists(out) else None
    if old != text:  # unchanged header, no rebuild
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)


def pkg_config(*pkgs):
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", *pkgs], check=True, capture_output=True, text=True).stdout
        libs = subprocess.run(["pkg-config", "--libs", *pkgs], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("polytel: pkg-config not found. Install it: apt-get install pkg-config libuv1-dev libcurl4-openssl-dev libdeflate-dev libzstd-dev")
    except subprocess.CalledProcessError as e:
        sys.exit(
            "polytel: pkg-config cannot find %s:\n%s\nInstall them: apt-get install libuv1-dev libcurl4-openssl-dev libdeflate-dev libzstd-dev"
            % (" ".join(pkgs), e.stderr.strip())
        )
    return cflags.split(), libs.split()


class BuildExt(build_ext):
    """Parallel compilation (the core is about twenty files); a full rebuild when the flags change."""

    FLAG_VARS = ("CC", "CFLAGS", "CPPFLAGS", "LDFLAGS", "POLYTEL_WITH_UV", "POLYTEL_PY_LAZY_CURL")

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self):
        # setuptools rebuilds by timestamps only: objects built with other flags (say, an ASan
        # build in the same tree) would otherwise be linked into this one.
        key = repr([(v, os.environ.get(v)) for v in self.FLAG_VARS])
        stamp = os.path.join(self.build_temp, "polytel-build-flags")
        old = open(stamp, encoding="utf-8").read() if os.path.exists(stamp) else None
        if old != key:
            self.force = True
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(key)


sync_core()
if not os.path.isdir(os.path.join(CORE_COPY, "core", "src")):
    sys.exit("polytel: the core sources are missing (expected ../../core or _core/core)")
major, minor, patch = core_version()
write_version_h(major, minor, patch)

def core_sources(with_uv):
    """The source list of core/CMakeLists.txt (POLYTEL_SOURCES), so the two builds never disagree."""
    text = open(os.path.join(CORE_COPY, "core", "CMakeLists.txt"), encoding="utf-8").read()
    base = re.search(r"set\(POLYTEL_SOURCES\s+([^)]*)\)", text)
    if not base:
        sys.exit("polytel: no set(POLYTEL_SOURCES ...) in core/CMakeLists.txt")
    names = base.group(1).split()
    if with_uv:
        for m in re.finditer(r"list\(APPEND\s+POLYTEL_SOURCES\s+([^)]*)\)", text):
            names += m.group(1).split()
    return [os.path.join("_core", "core", n) for n in names]


with_uv = os.environ.get("POLYTEL_WITH_UV", "1") != "0"
core_src = core_sources(with_uv)
LAZY_CURL = os.path.join("src", "lazy_curl.c")


def curl_calls(sources, cflags):
    """libcurl functions the core calls: curl_* names called in the sources and declared in curl's headers."""
    called = set()
    for src in sources:
        with open(src, encoding="utf-8") as f:
            called |= set(re.findall(r"\b(curl_\w+)\s*\(", f.read()))
    headers = ""
    dirs = [f[2:] for f in cflags if f.startswith("-I")] + ["/usr/include", "/usr/local/include"]
    for d in dirs:
        for h in glob.glob(os.path.join(d, "curl", "*.h")):
            with open(h, encoding="utf-8", errors="replace") as f:
                headers += f.read()
    if not headers:
        return None
    return {name for name in called if re.search(r"\b%s\s*\(" % name, headers)}


def lazy_curl_plan(sources, cflags, libs):
    """Load libcurl at the first phase-2 call (src/lazy_curl.c) when it covers every curl call; else link it."""
    if os.environ.get("POLYTEL_PY_LAZY_CURL", "1") == "0":
        return [], libs, []
    with open(LAZY_CURL, encoding="utf-8") as f:
        shimmed = set(re.findall(r"\b(curl_\w+)\b", f.read()))
    needed = curl_calls(sources, cflags)
    if needed is None or not needed <= shimmed:
        missing = sorted((needed or set()) - shimmed)
        print("polytel: linking libcurl at load time (lazy loading does not cover %s)" % (missing or "the headers"))
        return [], libs, []
    soname = None
    try:
        import ctypes.util

        soname = ctypes.util.find_library("curl")
    except Exception:
        pass
    macros = [("POLYTEL_CURL_SONAME", '"%s"' % (soname or "libcurl.so.4"))]
    return [LAZY_CURL], [x for x in libs if x != "-lcurl"] + ["-ldl"], macros


macros = [("_GNU_SOURCE", None)]
cflags, libs = [], []
extra_sources = []
if with_uv:
    macros.append(("POLYTEL_WITH_UV", "1"))
    cflags, libs = pkg_config("libuv", "libcurl", "libdeflate", "libzstd")
    extra_sources, libs, lazy_macros = lazy_curl_plan(core_src, cflags, libs)
    macros += lazy_macros

ext = Extension(
    "polytel._polytel",
    sources=[os.path.join("src", "_polytel.c")] + core_src + extra_sources,
    include_dirs=[
        os.path.join("_core", "core", "include"),
        os.path.join("_core", "generated"),
        os.path.join("_core", "core", "src"),
    ],
    define_macros=macros,
    extra_compile_args=["-std=gnu11", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wshadow"] + cflags,
    # Only PyInit__polytel leaves the extension: the core's polytel_* symbols stay private to it.
    extra_link_args=["-pthread", "-Wl,--version-script=" + os.path.join("src", "exports.map")] + libs,
    depends=[os.path.join("src", "exports.map")] + glob.glob(os.path.join("_core", "core", "src", "**", "*.h"), recursive=True),
)

setup(
    version="%s.%s.%s" % (major, minor, patch),
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
)
