"""Packaging: the sdist carries the core sources; a wheel built from it (outside the repo) imports and works."""
import importlib.util
import os
import subprocess
import sys
import tarfile

import pytest
from conftest import REPO

PKG = REPO / "bindings" / "python"


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    # find_spec, not import: a `build/` directory in the working directory would pass for the package.
    if importlib.util.find_spec("build.__main__") is None:
        pytest.skip("the `build` package is installed by `make test-python`")
    out = tmp_path_factory.mktemp("sdist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(PKG)],
                   check=True, capture_output=True, text=True, timeout=600)  # fmt: skip
    (path,) = list(out.glob("polytel-*.tar.gz"))
    return path


def test_sdist_contains_the_core(sdist):
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for required in ("setup.py", "pyproject.toml", "src/_polytel.c", "src/lazy_curl.c", "src/exports.map", "polytel/__init__.py",
                     "polytel/view/__init__.py", "polytel/view/_reader.py", "polytel/view/page.js", "polytel/view/page.css",
                     "polytel/view/page.html",
                     "polytel/__init__.pyi", "polytel/py.typed", "_core/core/sources.txt",
                     "_core/core/include/polytel.h", "_core/core/include/polytel/version.h",
                     "_core/core/src/runtime/phase.c", "_core/core/src/record/events.c"):  # fmt: skip
        assert required in names, required


def test_wheel_from_sdist_installs_and_runs(sdist, tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(sdist)],
                   check=True, capture_output=True, text=True, timeout=900, cwd=str(tmp_path))  # fmt: skip
    (whl,) = list(wheels.glob("polytel-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(whl)],
                   check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POLYTEL_", "TELEMETRY_"))}
    env.update(PYTHONPATH=str(site), TELEMETRY_ENABLED="true", POLYTEL_EXPORTER="none")
    code = ("import polytel; print(polytel.__file__); print(polytel.phase()); print(polytel.bootstrap_worker()['status']);"
            "from polytel import view; print('</html>' in view.render(view.read([])))")  # the page's assets are installed
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    path, phase, status, page = out.stdout.split("\n")[:4]
    assert page == "True"
    assert path.startswith(str(site))
    assert (phase, status) == ("deferred", "started")
