"""One version everywhere: project(VERSION) in the root CMakeLists.txt, the checked-in polytel/version.h, every
artefact's metadata and the .pc; the installed ones report it at run time (test_python/ruby/npm/c)."""
import json
import re
import tarfile
import zipfile

from conftest import DIST, REPO, VERSION, run


def project_version():
    return re.search(r"project\(polytel VERSION (\d+\.\d+\.\d+)", (REPO / "CMakeLists.txt").read_text()).group(1)


def test_make_passes_the_project_version():
    assert VERSION == project_version()


def test_checked_in_version_h_is_the_rendering_of_project_version():
    """core/CMakeLists.txt renders it at configure time; a version bump without a configure shows up here."""
    major, minor, patch = project_version().split(".")
    text = (REPO / "core" / "version.h.in").read_text()
    for k, v in (("PROJECT_VERSION_MAJOR", major), ("PROJECT_VERSION_MINOR", minor),
                 ("PROJECT_VERSION_PATCH", patch), ("PROJECT_VERSION", project_version())):
        text = text.replace("@%s@" % k, v)
    assert (REPO / "core" / "include" / "polytel" / "version.h").read_text() == text


def test_every_artefact_carries_it():
    v = project_version()
    seen = {}
    for whl in DIST.glob("polytel-*.whl"):
        with zipfile.ZipFile(whl) as z:
            meta = z.read("polytel-%s.dist-info/METADATA" % v).decode()
        seen[whl.name] = re.search(r"^Version: (.+)$", meta, re.M).group(1)
    with tarfile.open(DIST / ("polytel-%s.tar.gz" % v)) as tf:
        seen["sdist"] = re.search(r"^Version: (.+)$", tf.extractfile("polytel-%s/PKG-INFO" % v).read().decode(),
                                  re.M).group(1)
    for gem in DIST.glob("polytel-*.gem"):
        seen[gem.name] = run(["ruby", "-rrubygems/package", "-e",
                              "puts Gem::Package.new(ARGV[0]).spec.version", gem]).stdout.strip()
    with tarfile.open(DIST / ("polytel-wasm-%s.tgz" % v)) as tf:
        seen["npm"] = json.load(tf.extractfile("package/package.json"))["version"]
    seen["bindings/wasm/package.json"] = json.loads((REPO / "bindings" / "wasm" / "package.json").read_text())["version"]
    seen["deb"] = run(["dpkg-deb", "-f", DIST / ("libpolytel_%s_amd64.deb" % v), "Version"]).stdout.strip()
    pc = run(["sh", "-c", "dpkg-deb --fsys-tarfile \"$0\" | tar xO ./usr/lib/pkgconfig/polytel.pc",
              DIST / ("libpolytel_%s_amd64.deb" % v)]).stdout
    seen["deb polytel.pc"] = re.search(r"^Version: (.+)$", pc, re.M).group(1)
    with tarfile.open(DIST / ("libpolytel-%s-linux-x86_64.tar.gz" % v)) as tf:
        top = "libpolytel-%s-linux-x86_64" % v
        pc = tf.extractfile(top + "/lib/pkgconfig/polytel.pc").read().decode()
        cm = tf.extractfile(top + "/lib/cmake/polytel/polytelConfigVersion.cmake").read().decode()
        so = [n for n in tf.getnames() if re.search(r"/libpolytel\.so\.\d+\.\d+\.\d+$", n)]
    seen["tgz polytel.pc"] = re.search(r"^Version: (.+)$", pc, re.M).group(1)
    seen["tgz polytelConfigVersion.cmake"] = re.search(r'set\(PACKAGE_VERSION "([^"]+)"\)', cm).group(1)
    seen["tgz libpolytel.so"] = re.search(r"\.so\.(\d+\.\d+\.\d+)$", so[0]).group(1)
    assert len([k for k in seen if k.endswith(".whl")]) == 5 and len([k for k in seen if k.endswith(".gem")]) == 2
    assert {k: x for k, x in seen.items() if x != v} == {}, seen
