"""Champion/challenger split, stickiness, shadow, admin, hot swap, watcher."""

from __future__ import annotations

import json
import threading
import time

from ratchet.serving.traffic_split import Traffic, read_traffic, selects_challenger, stable_unit

ADMIN = {"Authorization": "Bearer s3cret"}


def test_stable_unit_is_stable_and_uniform():
    assert stable_unit("user-1") == stable_unit("user-1")
    us = [stable_unit(f"k{i}") for i in range(20_000)]
    assert all(0 <= u < 1 for u in us)
    assert abs(sum(u < 0.3 for u in us) / len(us) - 0.3) < 0.02
    assert not selects_challenger(0.0, "k") and selects_challenger(1.0, "k")


def test_traffic_split_matches_share(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}, admin_token="s3cret") as env:
        r = env.client.put("/admin/traffic", json={"challenger_share": 0.3}, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert json.loads((env.state_dir / "traffic.json").read_text()) == {
            "challenger_share": 0.3,
            "shadow": False,
        }
        versions = []
        for _ in range(500):
            r = env.client.post("/predict", json={"row": good_rows[0]})
            assert r.status_code == 200
            b = r.json()
            assert (b["alias"], b["model_version"]) in {("champion", "1"), ("challenger", "2")}
            assert r.headers["X-Model-Version"] == b["model_version"]
            versions.append(b["model_version"])
        share = versions.count("2") / len(versions)
        assert 0.2 <= share <= 0.4, share
        stats = env.client.get("/stats").json()
        assert stats["versions"]["2"]["requests"] == versions.count("2")
        assert stats["versions"]["1"]["requests"] == versions.count("1")
        assert stats["versions"]["1"]["latency_p50_ms"] > 0


def test_sticky_by_entity_key(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        env.client.put("/admin/traffic", json={"challenger_share": 0.5})
        for key in ("alice", "bob", "carol", "dave"):
            seen = {
                env.client.post("/predict", json={"row": good_rows[0], "entity_key": key}).json()["alias"]
                for _ in range(5)
            }
            assert len(seen) == 1, (key, seen)
            expected = "challenger" if stable_unit(key) < 0.5 else "champion"
            assert seen == {expected}
        # keys split by the share; raising the share only moves keys to the challenger
        keys = [f"user-{i}" for i in range(100)]
        at_half = {
            k: env.client.post("/predict", json={"row": good_rows[0], "entity_key": k}).json()["alias"]
            for k in keys
        }
        assert 0.35 < list(at_half.values()).count("challenger") / len(keys) < 0.65
        env.client.put("/admin/traffic", json={"challenger_share": 0.8})
        for k in keys:
            if at_half[k] == "challenger":
                assert (
                    env.client.post("/predict", json={"row": good_rows[0], "entity_key": k}).json()["alias"]
                    == "challenger"
                )


def test_shadow_mode(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        r = env.client.put("/admin/traffic", json={"challenger_share": 1.0, "shadow": True})
        assert r.json()["traffic"] == {"challenger_share": 1.0, "shadow": True}
        rids = []
        for _ in range(10):
            r = env.client.post("/predict", json={"rows": good_rows})
            assert r.status_code == 200
            b = r.json()
            assert b["alias"] == "champion" and b["model_version"] == "1"
            rids.append(b["request_id"])
        env.rt.flush()  # waits for the shadow queue, then profiles
        stats = env.client.get("/stats").json()["versions"]
        assert stats["2"]["shadow_rows"] == 10 * len(good_rows)
        assert stats["2"]["requests"] == 0 and stats["1"]["rows"] == 10 * len(good_rows)
        m = env.client.get("/metrics").text
        assert 'alias="shadow",model_version="2"' in m
        assert "ratchet_shadow_comparisons_total" in m
        assert list((env.state_dir / "profiles" / "2").glob("*.bin"))
        # feedback scores the shadow model too
        fb = env.client.post(
            "/feedback", json={"request_id": rids[0], "labels": ["yes"] * len(good_rows)}
        ).json()
        assert set(fb["versions"]) == {"1", "2"}


def test_failing_challenger_falls_back_to_champion(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "3"}) as env:  # "3" raises in predict_proba
        env.client.put("/admin/traffic", json={"challenger_share": 1.0})
        for _ in range(5):
            r = env.client.post("/predict", json={"row": good_rows[0]})
            assert r.status_code == 200 and r.json()["alias"] == "champion"
        m = env.client.get("/metrics").text
        assert 'ratchet_challenger_fallbacks_total{challenger_version="3",reason="model_error"} 5.0' in m
        assert 'ratchet_model_errors_total{alias="challenger",model_version="3"} 5.0' in m


def test_failing_champion_is_500_and_service_survives(serve, good_rows):
    with serve(aliases={"champion": "3"}) as env:
        r = env.client.post("/predict", json={"row": good_rows[0]})
        assert r.status_code == 500 and r.headers["X-Request-ID"]
        env.provider.set_alias("champion", "1")
        env.client.post("/admin/reload")
        assert env.client.post("/predict", json={"row": good_rows[0]}).status_code == 200


def test_admin_auth(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}, admin_token="s3cret") as env:
        c = env.client
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload").headers["WWW-Authenticate"] == "Bearer"
        assert c.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.post("/admin/reload", headers={"Authorization": "Basic czNjcmV0"}).status_code == 401
        assert c.put("/admin/traffic", json={"challenger_share": 0.5}).status_code == 401
        assert (
            c.put(
                "/admin/traffic", json={"challenger_share": 0.5}, headers={"Authorization": "Bearer nope"}
            ).status_code
            == 403
        )
        assert not (env.state_dir / "traffic.json").exists()
        assert c.post("/admin/reload", headers=ADMIN).status_code == 200
        for bad in (
            {"challenger_share": 1.5},
            {"challenger_share": "x"},
            {"challenger_share": 0.1, "shadow": 1},
            {"share": 0.1},
            [0.1],
        ):
            assert c.put("/admin/traffic", json=bad, headers=ADMIN).status_code == 422, bad
        assert (
            c.put(
                "/admin/traffic",
                content=b'{"challenger_share": NaN}',
                headers={**ADMIN, "Content-Type": "application/json"},
            ).status_code
            == 422
        )
        assert c.get("/health").json()["traffic"]["challenger_share"] == 0.0


def test_reload_picks_moved_alias_and_reuses_loaded_models(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        assert sorted(env.provider.loads) == [("challenger", "2"), ("champion", "1")]
        # promote: champion -> 2, no challenger; "2" is already loaded, so no provider.load
        env.provider.set_alias("champion", "2")
        env.provider.set_alias("challenger", None)
        r = env.client.post("/admin/reload").json()
        assert sorted(r["changed"]) == ["challenger", "champion"]
        assert (r["champion"], r["challenger"]) == ("2", None)
        assert len(env.provider.loads) == 2
        assert env.client.post("/predict", json={"row": good_rows[0]}).json()["model_version"] == "2"
        # an unset champion alias keeps serving what is loaded, and says so
        env.provider.set_alias("champion", None)
        r = env.client.post("/admin/reload")
        assert r.status_code == 502 and "champion" in r.json()["errors"]
        assert env.client.post("/predict", json={"row": good_rows[0]}).status_code == 200


def test_watcher_picks_up_rollback_and_traffic_file(serve, good_rows):
    with serve(aliases={"champion": "2"}, watch_interval_s=0.05) as env:
        env.provider.set_alias("champion", "1")  # e.g. a rollback by another process

        def wait_for(pred, timeout=5.0):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if pred():
                    return True
                time.sleep(0.02)
            return False

        assert wait_for(lambda: env.client.get("/health").json()["champion"] == "1")
        env.provider.set_alias("challenger", "2")
        (env.state_dir / "traffic.json").write_text(json.dumps({"challenger_share": 0.25, "shadow": True}))
        assert wait_for(lambda: env.client.get("/health").json()["traffic"]["challenger_share"] == 0.25)
        assert env.client.get("/health").json()["challenger"] == "2"
        assert read_traffic(env.state_dir / "traffic.json") == Traffic(0.25, True)
        # a broken traffic file keeps the last good split and is reported
        (env.state_dir / "traffic.json").write_text("{oops")
        assert wait_for(lambda: env.client.get("/health").json()["last_error"] is not None)
        assert env.client.get("/health").json()["traffic"]["challenger_share"] == 0.25


def test_swap_under_concurrent_load(serve, good_rows):
    with serve(
        aliases={"champion": "1", "challenger": "2"}, admin_token="s3cret", watch_interval_s=0.02
    ) as env:
        env.client.put("/admin/traffic", json={"challenger_share": 0.5}, headers=ADMIN)
        stop = threading.Event()
        statuses: list[int] = []
        versions: set[str] = set()
        lock = threading.Lock()

        def fire():
            while not stop.is_set():
                r = env.client.post("/predict", json={"rows": good_rows})
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        versions.add(r.json()["model_version"])

        threads = [threading.Thread(target=fire) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(30):
                a, b = ("2", "1") if i % 2 == 0 else ("1", "2")
                env.provider.set_alias("champion", a)
                env.provider.set_alias("challenger", b if i % 3 else None)
                if i % 2:
                    assert env.client.post("/admin/reload", headers=ADMIN).status_code == 200
                    env.client.put("/admin/traffic", json={"challenger_share": (i % 5) / 4}, headers=ADMIN)
                time.sleep(0.01)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert len(statuses) > 30
        assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        assert versions == {"1", "2"}


def test_challenger_with_other_schema_never_fails_a_request(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "4"}) as env:  # "4" also wants x3
        env.client.put("/admin/traffic", json={"challenger_share": 1.0})
        r = env.client.post("/predict", json={"row": good_rows[0]})
        assert r.status_code == 200 and r.json()["alias"] == "champion"
        r = env.client.post("/predict", json={"row": dict(good_rows[0], x3=1.0)})
        assert r.status_code == 200 and r.json()["model_version"] == "4"
        r = env.client.post("/predict", json={"row": dict(good_rows[0], x3="a")})
        assert r.status_code == 422 and "rows[0].x3" in r.json()["detail"]  # neither model takes it
        m = env.client.get("/metrics").text
        assert 'ratchet_challenger_fallbacks_total{challenger_version="4",reason="schema"} 1.0' in m


def test_provider_failure_keeps_old_model(serve, good_rows):
    with serve(aliases={"champion": "1"}) as env:
        env.provider.set_alias("champion", "5")  # loading "5" raises
        r = env.client.post("/admin/reload")
        assert r.status_code == 502 and "registry unreachable" in r.json()["errors"]["champion"]
        assert env.client.get("/health").json()["last_error"]
        b = env.client.post("/predict", json={"row": good_rows[0]}).json()
        assert b["model_version"] == "1"
        env.provider.set_alias("champion", "2")
        assert env.client.post("/admin/reload").status_code == 200
        assert env.client.get("/health").json()["last_error"] is None


def test_nothing_loaded_before_startup(tmp_path, models):
    from fastapi.testclient import TestClient

    from ratchet.serving import create_app

    from .helpers import MemoryProvider, serving_config

    class Counting(MemoryProvider):
        calls = 0

        def versions(self):
            Counting.calls += 1
            return super().versions()

    provider = Counting(models, {"champion": "1"})
    app = create_app(provider, serving_config(), tmp_path, watch_interval_s=None)
    assert Counting.calls == 0 and provider.loads == []
    with TestClient(app) as c:
        assert provider.loads == [("champion", "1")]
        assert c.get("/ready").status_code == 200
