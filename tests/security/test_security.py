"""What an attacker would try, tried: the admin routes with no, a wrong and the right token; a
service or a Prefect server bound to the network without a credential; the modes of the admin
token, the home and a backup archive (whatever the umask); a webhook message with a bad
signature at the documented receiver. Real servers on loopback, the installed ``ratchet``
command in a clean environment (no PREFECT_* or RATCHET_* variable but the home) from a folder
outside the repository."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ratchet.core.files import free_port
from ratchet.core.settings import Settings
from ratchet.runtime.stack import admin_token, token_file
from ratchet.serving import create_app
from ratchet.serving.middleware import OpenAdminError, check_bind
from tests.conftest import ROOT
from tests.serving.helpers import MemoryProvider, SkModel, serving_config, uvicorn_in_thread

BIN = Path(sys.executable).parent
TOKEN = "s3cret-admin-token"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no PREFECT_* or RATCHET_* variable but the home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RATCHET_"))}
    return {**env, "RATCHET_HOME": str(home), **extra}


def ratchet(folder: Path, env: dict[str, str], *args: str, umask: int = 0o022, timeout: float = 120):
    assert not folder.resolve().is_relative_to(ROOT)
    return subprocess.run([str(BIN / "ratchet"), *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout, umask=umask)


@pytest.fixture
def user(tmp_path: Path) -> tuple[Path, Path]:
    """(a project folder outside the repository, a home that does not exist yet)."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder, tmp_path / "home"


@pytest.fixture
def service(tmp_path: Path):
    """The inference service over tiny real sklearn models, served by uvicorn on loopback with an
    admin token; yields (its URL, its app)."""
    provider = MemoryProvider({"1": SkModel("1", seed=1), "2": SkModel("2", seed=2)},
                              {"champion": "1", "challenger": "2"})
    app = create_app(provider, serving_config(), tmp_path / "serving", admin_token=TOKEN, watch_interval_s=None)
    with uvicorn_in_thread(app) as server:
        yield f"http://127.0.0.1:{server.config.port}", app


def admin_routes(app) -> list[tuple[str, str, dict]]:
    """Every route under /admin the app has (so a new one is covered too), with a valid body."""
    bodies = {"/admin/traffic": {"challenger_share": 0.25}}
    found = [(method, route.path, bodies.get(route.path, {}))
             for route in app.routes if route.path.startswith("/admin") for method in route.methods]
    assert {path for _, path, _ in found} >= {"/admin/traffic", "/admin/reload"}, found
    return found


def test_every_admin_route_wants_the_right_token(service):
    url, app = service
    attempts = {
        "none": ({}, 401),
        "wrong token": ({"Authorization": "Bearer not-the-token"}, 403),
        "token as basic auth": ({"Authorization": f"Basic {TOKEN}"}, 401),
        "bearer, no token": ({"Authorization": "Bearer"}, 401),
        "right token, other case": ({"Authorization": f"Bearer {TOKEN.upper()}"}, 403),
    }
    with httpx.Client(base_url=url, timeout=10) as client:
        for method, path, body in admin_routes(app):
            for what, (headers, expected) in attempts.items():
                r = client.request(method, path, json=body, headers=headers)
                assert r.status_code == expected, (method, path, what, r.status_code, r.text)
            assert client.get("/stats").json()["traffic"]["challenger_share"] == 0.0  # nothing moved
            r = client.request(method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200, (method, path, r.text)
        assert client.get("/stats").json()["traffic"]["challenger_share"] == 0.25  # the right token did


def test_no_admin_token_is_allowed_on_loopback_only():
    for host in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "myhost.example.com", ""):
        with pytest.raises(OpenAdminError, match="RATCHET_ADMIN_TOKEN"):
            check_bind(host, None)
        check_bind(host, TOKEN)  # a token: any address
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, None)  # open on this machine only, with a warning


def test_python_m_serving_on_the_network_without_a_token_refuses_in_one_line(user):
    folder, home = user
    r = subprocess.run([sys.executable, "-m", "ratchet.serving", "--host", "0.0.0.0", "--port", str(free_port())],
                       cwd=folder, env=clean_env(home), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "no admin token" in r.stderr and "RATCHET_ADMIN_TOKEN" in r.stderr


def test_the_home_and_its_token_are_their_owners_whatever_the_umask(tmp_path):
    old = os.umask(0)  # the loosest umask: nothing is masked
    try:
        settings = Settings(home=tmp_path / "home").ensure()
        token = admin_token(settings)
    finally:
        os.umask(old)
    assert mode(settings.root) == 0o700 and mode(settings.root / "run") == 0o700
    assert mode(settings.prefect_home) == 0o700  # Prefect's database holds its Secret blocks
    assert mode(token_file(settings)) == 0o600 and len(token) >= 32
    assert admin_token(settings) == token  # made once, then reused
    assert [p.name for p in (settings.root / "run").iterdir()] == ["admin-token"]  # no temporary file left


def test_two_processes_making_the_token_at_once_agree(tmp_path):
    home = tmp_path / "home"
    code = ("import sys; from ratchet.core.settings import Settings; from ratchet.runtime.stack import admin_token; "
            "print(admin_token(Settings(home=sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True,
                              env=clean_env(home)) for _ in range(4)]
    tokens = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert tokens == {(home / "run" / "admin-token").read_text()}


def test_backup_archive_is_0600_and_restore_keeps_the_modes(user, tmp_path):
    folder, home = user
    settings = Settings(home=home).ensure()
    token = admin_token(settings)
    (home / "ratchet.yaml").write_text("model_name: secure\n")
    env = clean_env(home)
    archive = tmp_path / "backups" / "home.tar.gz"
    r = ratchet(folder, env, "backup", str(archive), umask=0)  # nothing masked: the modes are ratchet's own
    assert r.returncode == 0, r.stderr
    assert mode(archive) == 0o600
    assert [p.name for p in archive.parent.iterdir()] == ["home.tar.gz"]  # no readable temporary left

    new = tmp_path / "restored"
    r = ratchet(folder, clean_env(new), "restore", str(archive), "--home", str(new), umask=0)
    assert r.returncode == 0, r.stderr
    assert mode(new) == 0o700
    assert mode(new / "run" / "admin-token") == 0o600 and (new / "run" / "admin-token").read_text() == token


def test_a_prefect_server_on_the_network_needs_an_auth_string(user):
    folder, home = user
    r = ratchet(folder, clean_env(home, RATCHET_PREFECT_HOST="0.0.0.0"), "up", timeout=180)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "PREFECT_SERVER_API_AUTH_STRING" in r.stderr, r.stderr
    assert not (home / "run" / "prefect-server.json").exists()  # nothing started


def test_the_documented_receiver_takes_ratchets_signed_messages_only():
    from ratchet.delivery.notify import SIGNATURE_HEADER, post_signed, signature
    from tests.flows.test_notifications import receiver_example

    secret, got = "webhook-secret", []
    server = receiver_example().make_server(free_port(), secret, handle=got.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    body = '{"notification": "ratchet.model.promoted", "champion": "7"}'
    try:
        forged = {
            "no signature": {},
            "another secret's": {SIGNATURE_HEADER: signature(body.encode(), "guessed")},
            "another body's": {SIGNATURE_HEADER: signature(b'{"champion": "1"}', secret)},
            "bare hex": {SIGNATURE_HEADER: signature(body.encode(), secret).removeprefix("sha256=")},
        }
        for what, headers in forged.items():
            r = httpx.post(url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=10)
            assert r.status_code == 401, what
        tampered = body.replace('"7"', '"1"')  # a signature taken from a real message, the body changed
        r = httpx.post(url, content=tampered, timeout=10,
                       headers={SIGNATURE_HEADER: signature(body.encode(), secret)})
        assert r.status_code == 401
        assert got == []  # nothing forged was handled
        assert post_signed(url, body, secret) == 204  # what the notify flow sends
        assert got == [{"notification": "ratchet.model.promoted", "champion": "7"}]
        with pytest.raises(ValueError, match="never sent unsigned"):
            post_signed(url, body, "")
    finally:
        server.shutdown()


def wait_for(what: str, check, proc: subprocess.Popen | None = None, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s")


@pytest.mark.slow  # a real `ratchet serve`: 10-25 s to import and start on two busy cores
def test_ratchet_serve_on_all_addresses_in_a_home_without_a_token(user):
    folder, home = user
    port = free_port()
    serve = subprocess.Popen([str(BIN / "ratchet"), "serve", "--host", "0.0.0.0", "--port", str(port)], cwd=folder,
                             env=clean_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the service", lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, serve)
        token_path = home / "run" / "admin-token"
        assert mode(token_path) == 0o600 and mode(home) == 0o700
        share = {"challenger_share": 0.5}
        r = httpx.put(f"{url}/admin/traffic", json=share, timeout=10)
        assert r.status_code == 401, r.text
        r = httpx.put(f"{url}/admin/traffic", json=share, timeout=10,
                      headers={"Authorization": f"Bearer {token_path.read_text()}"})
        assert r.status_code == 200 and r.json()["traffic"]["challenger_share"] == 0.5, r.text
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=60)
    assert f"admin token: {token_path}" in err  # where to find it


@pytest.mark.slow  # a real Prefect server: 15-60 s to start on two busy cores
def test_a_prefect_server_on_the_network_takes_basic_auth_and_ratchet_presents_it(user):
    import base64

    folder, home = user
    env = clean_env(home, RATCHET_PREFECT_HOST="0.0.0.0", PREFECT_SERVER_API_AUTH_STRING="admin:correct-horse")
    start = ("from ratchet.core.settings import Settings; from ratchet_cli import server; "
             "print(server.ensure(Settings().ensure())['api_url'])")
    r = subprocess.run([sys.executable, "-c", start], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    api = r.stdout.strip().splitlines()[-1]
    try:
        assert httpx.post(f"{api}/flows/filter", json={}, timeout=10).status_code == 401  # anyone on the network
        wrong = base64.b64encode(b"admin:guess").decode()
        assert httpx.post(f"{api}/flows/filter", json={}, timeout=10,
                          headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        right = base64.b64encode(b"admin:correct-horse").decode()
        assert httpx.post(f"{api}/flows/filter", json={}, timeout=10,
                          headers={"Authorization": f"Basic {right}"}).status_code == 200
        # the commands use it: `gc` calls the API itself, Prefect's own client gets the auth string
        gc = ratchet(folder, env, "gc", "--dry-run", "--json")
        assert gc.returncode == 0, gc.stderr
        assert json.loads(gc.stdout)["parts"]["flow_runs"]["skipped"] is None, gc.stdout  # it asked the server
        client = ("from ratchet.core.settings import Settings, apply_prefect_env; apply_prefect_env(Settings()); "
                  "from prefect.client.orchestration import get_client\n"
                  "with get_client(sync_client=True) as c: print(len(c.read_flows()))")
        r = subprocess.run([sys.executable, "-c", client], cwd=folder, env={**env, "PREFECT_API_URL": api},
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip().splitlines()[-1].isdigit(), r.stderr[-3000:]
    finally:
        down = ratchet(folder, env, "down", timeout=120)
        assert down.returncode == 0, down.stderr
