# setup.py — builds polytel._polytel with the core's C sources compiled in (setuptools, PEP 517).
#
# From the repository, the core (../../core: sources.txt, src/, include/) is copied into _core/ first,
# so an sdist carries it; from an sdist, _core/ is already there. What is compiled is the list in
# core/sources.txt, the version is the one in core/include/polytel/version.h (docs/building.md).
# The extension links libuv, libisal and libzstd (pkg-config); libcurl is loaded at the first phase-2 call
# (src/lazy_curl.c). Wheels for an index: `make dist` (auditwheel repair: docs/python.md).
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
CORE = os.path.join(CORE_COPY, "core")
os.chdir(HERE)  # setuptools wants source paths relative to the project

# What the build needs beyond a C compiler: (pkg-config name, a header it provides, -l name, Debian, Fedora).
DEPS = (
    ("libuv", "uv.h", "uv", "libuv1-dev", "libuv-devel"),
    ("libcurl", "curl/curl.h", "curl", "libcurl4-openssl-dev", "libcurl-devel"),
    ("libisal", "isa-l/igzip_lib.h", "isal", "libisal-dev", "isa-l-devel"),
    ("libzstd", "zstd.h", "zstd", "libzstd-dev", "libzstd-devel"),
)


def sync_core():
    """Refresh _core/ from the repository when building inside it; keep the copy otherwise (an sdist)."""
    src = os.path.join(REPO, "core")
    if not os.path.isfile(os.path.join(src, "sources.txt")):
        return
    if os.path.isdir(CORE_COPY):
        shutil.rmtree(CORE_COPY)
    for sub in ("src", "include"):
        shutil.copytree(os.path.join(src, sub), os.path.join(CORE, sub), ignore=shutil.ignore_patterns("*.o", "*~"))
    shutil.copy2(os.path.join(src, "sources.txt"), os.path.join(CORE, "sources.txt"))


def core_version():
    """POLYTEL_VERSION_STRING of the checked-in polytel/version.h (rendered by CMake from project(VERSION))."""
    with open(os.path.join(CORE, "include", "polytel", "version.h"), encoding="utf-8") as f:
        m = re.search(r'#define POLYTEL_VERSION_STRING "([^"]+)"', f.read())
    if not m:
        sys.exit("polytel: no POLYTEL_VERSION_STRING in _core/core/include/polytel/version.h")
    return m.group(1)


def core_sources(with_uv):
    """core/sources.txt: one path per line (relative to core/), a `uv` word for the libuv-only files."""
    out = []
    with open(os.path.join(CORE, "sources.txt"), encoding="utf-8") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words and (with_uv or "uv" not in words[1:]):
                out.append(os.path.join("_core", "core", words[0]))
    return out


def _run(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return r.stdout.split() if r.returncode == 0 else None


def _header_found(header, cflags):
    """Whether the C compiler (the one setuptools will use) finds `header`: what the build will need."""
    import shlex
    import sysconfig

    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    try:
        r = subprocess.run(cc + cflags + ["-E", "-x", "c", "-o", os.devnull, "-"], input="#include <%s>\n" % header,
                           capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("polytel: no C compiler (%s) to build the extension; install one (apt-get install gcc), "
                 "or install a prebuilt manylinux wheel" % cc[0])
    return r.returncode == 0


def find_deps(names):
    """cflags and libs for each dependency (pkg-config, else the compiler's default paths); one message for all missing."""
    cflags, libs, missing = [], [], []
    for pc, header, lib, deb, rpm in DEPS:
        if pc not in names:
            continue
        c, lflags = _run(["pkg-config", "--cflags", pc]), _run(["pkg-config", "--libs", pc])
        if c is None or lflags is None:
            c, lflags = [], ["-l" + lib]
        if not _header_found(header, c):
            missing.append((pc, header, deb, rpm))
            continue
        cflags += [x for x in c if x not in cflags]
        libs += lflags
    if missing:
        sys.exit(
            "polytel: cannot build the extension: missing %s.\n"
            "  Debian/Ubuntu: apt-get install %s\n"
            "  Fedora/RHEL:   dnf install %s\n"
            "  (or make `pkg-config` find them: PKG_CONFIG_PATH; prebuilt manylinux wheels need none of this)"
            % (", ".join("%s (%s)" % (m[0], m[1]) for m in missing), " ".join(m[2] for m in missing),
               " ".join(m[3] for m in missing))
        )
    return cflags, libs


class BuildExt(build_ext):
    """Parallel compilation (the core is about twenty files); a full rebuild when the flags change."""

    FLAG_VARS = ("CC", "CFLAGS", "CPPFLAGS", "LDFLAGS", "POLYTEL_WITH_UV", "POLYTEL_PY_LAZY_CURL")

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = int(os.environ.get("POLYTEL_BUILD_JOBS", 0)) or os.cpu_count() or 1

    def run(self):
        # setuptools rebuilds by timestamps only: objects built with other flags (say, an ASan
        # build in the same tree) would otherwise be linked into this one.
        key = repr([(v, os.environ.get(v)) for v in self.FLAG_VARS])
        stamp = os.path.join(self.build_temp, "polytel-build-flags")
        old = open(stamp, encoding="utf-8").read() if os.path.exists(stamp) else None
        if old != key:
            self.force = True
        for ext in self.extensions:
            add_deps(ext)
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(key)


sync_core()
if not os.path.isfile(os.path.join(CORE, "sources.txt")):
    sys.exit("polytel: the core sources are missing (expected ../../core or _core/core)")
version = core_version()
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
        return [], libs
    with open(LAZY_CURL, encoding="utf-8") as f:
        shimmed = set(re.findall(r"\b(curl_\w+)\b", f.read()))
    needed = curl_calls(sources, cflags)
    if needed is None or not needed <= shimmed:
        missing = sorted((needed or set()) - shimmed)
        print("polytel: linking libcurl at load time (lazy loading does not cover %s)" % (missing or "the headers"))
        return [], libs
    # libcurl's soname has been libcurl.so.4 since 2006 on every Linux; lazy_curl.c also tries the GnuTLS build.
    return [LAZY_CURL], [x for x in libs if x != "-lcurl"] + ["-ldl"]


macros = [("_GNU_SOURCE", None)] + ([("POLYTEL_WITH_UV", "1")] if with_uv else [])


def add_deps(ext):
    """The dependencies' flags, found when the extension is built (an sdist is made without them)."""
    if not with_uv:
        return
    cflags, libs = find_deps(("libuv", "libcurl", "libisal", "libzstd"))
    extra_sources, libs = lazy_curl_plan(core_src, cflags, libs)
    ext.sources += extra_sources
    ext.extra_compile_args += cflags
    ext.extra_link_args += libs


ext = Extension(
    "polytel._polytel",
    sources=[os.path.join("src", "_polytel.c")] + core_src,
    include_dirs=[os.path.join("_core", "core", "include"), os.path.join("_core", "core", "src")],
    define_macros=macros,
    extra_compile_args=["-std=gnu11", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wshadow"],
    # Only PyInit__polytel leaves the extension: the core's polytel_* symbols stay private to it.
    extra_link_args=["-pthread", "-Wl,--version-script=" + os.path.join("src", "exports.map")],
    depends=[os.path.join("src", "exports.map")]
    + glob.glob(os.path.join("_core", "core", "**", "*.h"), recursive=True),
)

setup(
    version=version,
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
)
