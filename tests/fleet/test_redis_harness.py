"""The redis-server harness (tests/support/redis_server.py) that the fleet, Sidekiq and OTel suites share."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

from redis_server import RedisServer, _command, redis_server  # noqa: E402,F401


def test_fixture_serves_and_stores(redis_server):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert _command(redis_server.port, ["SET", "k", "v"]) == b"+OK"
    assert _command(redis_server.port, ["DBSIZE"]) == b":1"


def test_two_servers_get_their_own_ports_and_stop_leaves_nothing():
    with RedisServer() as a, RedisServer() as b:
        assert a.port != b.port
        _command(a.port, ["SET", "only-in-a", "1"])
        assert _command(b.port, ["DBSIZE"]) == b":0", "redis harness: a second server shares the first's data"
        pa, d = a.proc, a.dir
    assert pa.poll() is not None, "redis harness: redis-server still running after stop()"
    assert not os.path.exists(d), f"redis harness: {d} left behind"
    assert not a.ping()


def test_missing_binary_is_one_clear_line():
    r = RedisServer(binary="/nonexistent/redis-server")
    try:
        r.start()
    except Exception as e:  # FileNotFoundError from Popen is fine too, as long as it names the path
        assert "redis-server" in str(e)
    else:
        r.stop()
        raise AssertionError("redis harness: start() with a missing binary did not fail")


def test_cli_writes_port_file_and_stops_on_sigterm(tmp_path):
    pf = tmp_path / "port"
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "support", "redis_server.py"),
                          "--port-file", str(pf)])
    try:
        deadline = time.monotonic() + 60
        while not pf.exists() and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        port = int(pf.read_text())
        assert _command(port, ["PING"]) == b"+PONG"
    finally:
        p.terminate()
        assert p.wait(timeout=60) == 0
