"""Downloads from a local HTTP server on 127.0.0.1 serving ../shared/data/mnist.

Each mirror is a path prefix on one server: /good/ serves the files, /corrupt/ flips bytes in the
middle of each, /drop/ promises the full length then closes the connection half-way, /missing/
answers 404, /slow/ answers after the client's time-out.
"""

import http.server
import threading
import time

import numpy as np
import pytest

from convprop.datasets import load_mnist
from convprop.datasets import catalog, download
from convprop.errors import ConvpropError

SPEC = catalog.DATASETS["mnist"]
LABELS = SPEC.files["test"][1]


class Handler(http.server.BaseHTTPRequestHandler):
    root = None
    log = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _, mode, name = self.path.split("/", 2)
        self.log.append((mode, name))
        target = self.root / name
        if mode == "missing" or not target.is_file():
            self.send_error(404)
            return
        body = target.read_bytes()
        if mode == "corrupt":
            body = bytearray(body)
            middle = len(body) // 2
            body[middle:middle + 16] = bytes(b ^ 0x5A for b in body[middle:middle + 16])
            body = bytes(body)
        if mode == "slow":
            time.sleep(1.0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (time-out test)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(shared):
    Handler.root = shared / "data" / "mnist"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(monkeypatch, tmp_path, server):
    monkeypatch.delenv("CONVPROP_DATA", raising=False)
    monkeypatch.setenv("CONVPROP_CACHE", str(tmp_path / "cache"))
    Handler.log.clear()

    def mirrors(*modes):
        monkeypatch.setenv("CONVPROP_MIRRORS", ",".join(f"{server}/{m}" for m in modes))
    return mirrors


def cache_files(tmp_path):
    d = tmp_path / "cache" / "mnist"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def test_good_mirror_then_cache_reuse(env, tmp_path, capsys):
    env("good")
    x, y = load_mnist("test", progress=True)
    assert x.shape == (10000, 28, 28) and y[:5].tolist() == [7, 2, 1, 0, 4]
    assert int(x.sum(dtype=np.int64)) == 264923200
    assert Handler.log == [("good", "t10k-images-idx3-ubyte.gz"),
                           ("good", "t10k-labels-idx1-ubyte.gz")]
    assert "t10k-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar
    assert cache_files(tmp_path) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    env("missing")  # no usable network from now on: the cache must serve
    Handler.log.clear()
    x2, y2 = load_mnist("test", progress=False)
    assert Handler.log == []
    np.testing.assert_array_equal(x, x2)


def test_corrupt_mirror_falls_back_to_next(env, tmp_path):
    env("corrupt", "good")
    y = load_mnist("test", progress=False)[1]
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert Handler.log[:2] == [("corrupt", "t10k-images-idx3-ubyte.gz"),
                               ("good", "t10k-images-idx3-ubyte.gz")]


@pytest.mark.parametrize("modes, reason", [
    (["corrupt"], "corrupt gzip data"),
    (["drop"], "connection dropped mid-download"),
    (["missing"], "HTTP 404"),
])
def test_every_mirror_failing_is_a_clear_error(env, tmp_path, modes, reason):
    env(*modes, "missing")
    with pytest.raises(ConvpropError) as info:
        download.download_file(SPEC, LABELS, tmp_path / "cache" / "mnist", progress=False)
    text = str(info.value)
    assert text.startswith("could not download mnist file t10k-labels-idx1-ubyte.gz: tried ")
    assert f"/{modes[0]}/t10k-labels-idx1-ubyte.gz ({reason}" in text
    assert "/missing/t10k-labels-idx1-ubyte.gz (HTTP 404)" in text
    assert "CONVPROP_MIRRORS" in text and "CONVPROP_DATA" in text and "\n" not in text
    assert cache_files(tmp_path) == []  # no partial or temporary file left in the cache


def test_dropped_connection_is_retried_then_next_mirror(env, tmp_path):
    env("drop", "good")
    path = download.download_file(SPEC, LABELS, tmp_path / "cache" / "mnist", progress=False)
    assert [m for m, _ in Handler.log] == ["drop", "drop", "good"]  # 2 attempts, then next
    assert path.name == "t10k-labels-idx1-ubyte.gz"


def test_wrong_content_fails_sha256(env, tmp_path, monkeypatch):
    """A well-formed file with other content (here: MNIST asked for as Fashion-MNIST)."""
    env("good")
    fashion_labels = catalog.DATASETS["fashion-mnist"].files["test"][1]
    with pytest.raises(ConvpropError, match=r"\(SHA-256 mismatch \(got ff7bcfd416de…, expected"
                                            r" 0402a96d92fd…\)\)"):
        download.download_file(SPEC, fashion_labels, tmp_path / "dl", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_timeout(env, tmp_path):
    env("slow")
    t0 = time.perf_counter()
    with pytest.raises(ConvpropError, match=r"/slow/t10k-labels-idx1-ubyte.gz \(timed out\)"):
        download.download_file(SPEC, LABELS, tmp_path / "dl", progress=False, timeout=0.2,
                               attempts=1)
    assert time.perf_counter() - t0 < 1.0


def test_mirror_name_placeholder(env, monkeypatch, server):
    monkeypatch.setenv("CONVPROP_MIRRORS", f" {server}/{{name}}/ , {server}/good")
    assert download.mirrors_for(SPEC) == [f"{server}/mnist", f"{server}/good"]
    monkeypatch.delenv("CONVPROP_MIRRORS")
    assert download.mirrors_for(SPEC) == list(SPEC.mirrors)
