"""whylogs loads without scikit-learn (0.8 s of every ingest on two cores), and scikit-learn
still imports whole afterwards for whoever needs it."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import ratchet.data.profiling as p
assert "sklearn" not in sys.modules, sorted(m for m in sys.modules if m.startswith("sklearn"))
view = p.profile_frame(__import__("pandas").DataFrame({"x": [1.0, 2.0], "s": ["a", "b"]}))
assert view.get_column("x").get_metric("counts").n.value == 2
import sklearn.cluster
assert sklearn.cluster.KMeans
print("ok")
"""


def test_whylogs_loads_without_sklearn_and_sklearn_still_imports():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_an_imported_sklearn_is_left_alone():
    code = ("import sys, sklearn.cluster; from ratchet.core.imports import without_sklearn\n"
            "with without_sklearn(): import sklearn.decomposition\n"
            "assert sys.modules['sklearn'] is not None and sklearn.decomposition.PCA; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_warm_preload_is_trimmed_by_its_variable(monkeypatch):
    from ratchet.core.imports import warm_preload

    monkeypatch.delenv("RATCHET_WARM_PRELOAD", raising=False)
    assert warm_preload(("pandas", "torch")) == ["pandas", "torch"]
    monkeypatch.setenv("RATCHET_WARM_PRELOAD", " pandas, ,mlflow ")
    assert warm_preload(("pandas", "torch")) == ["pandas", "mlflow"]
