"""`deepix serve`: a real server on a loopback port; every endpoint, batching, the API key, and bad uploads
answered with a 4xx and a one-line JSON error while the server stays healthy."""
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from deepix.serve.app import Limits, make_app


def huge_png_header(w=30_000, h=30_000) -> bytes:
    """A tiny file whose header claims w x h pixels: a decompression bomb if anyone decoded it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server(runs, start_server):
    s = start_server(make_app([str(runs[k]) for k in ("classify", "restore", "detect", "generate")],
                              limits=Limits(max_bytes=2**20)))
    yield s
    s.stop()


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def digit() -> bytes:
    return png((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8))


def test_models_health_page_and_openapi(server):
    h = httpx.get(f"{server.url}/healthz").json()
    assert h == {"status": "ok", "models": 4}
    models = {m["name"]: m for m in httpx.get(f"{server.url}/v1/models").json()["models"]}
    assert {m["task"] for m in models.values()} == {"classify", "restore", "detect", "generate"}
    assert [m["name"] for m in models.values() if m["makes_images"]] == [n for n, m in models.items() if m["task"] == "generate"]
    assert models["c"]["batching"] and models["c"]["classes"] == [str(i) for i in range(10)]
    page = httpx.get(server.url).text
    assert "<script>" in page and "http://" not in page.replace("http://www.w3.org", "")  # no CDN: works offline
    assert "/v1/models/{name}/predict" in httpx.get(f"{server.url}/openapi.json").text


def test_each_task_answers(server):
    r = httpx.post(f"{server.url}/v1/models/c/predict", files={"file": ("d.png", digit())}).json()
    assert r["task"] == "classify" and len(r["results"][0]["top"]) == 5 and r["ms"] > 0
    two = httpx.post(f"{server.url}/v1/models/c/predict", files=[("files", ("a.png", digit())), ("files", ("b.png", digit()))])
    assert len(two.json()["results"]) == 2
    photo = png((np.random.default_rng(1).random((40, 52)) * 255).astype(np.uint8))
    r = httpx.post(f"{server.url}/v1/models/r/predict", files={"file": ("p.png", photo)}).json()["results"][0]
    assert (r["width"], r["height"]) == (52, 40)
    assert Image.open(io.BytesIO(__import__("base64").b64decode(r["image"]))).size == (52, 40)
    rgb = png((np.random.default_rng(2).random((100, 120, 3)) * 255).astype(np.uint8))
    r = httpx.post(f"{server.url}/v1/models/d/predict", files={"file": ("s.png", rgb)}, data={"conf": "0.01"}).json()
    assert isinstance(r["results"][0]["detections"], list)
    g = httpx.post(f"{server.url}/v1/models/g/generate", data={"n": "4"}).json()
    assert g["n"] == 4 and Image.open(io.BytesIO(__import__("base64").b64decode(g["grid"]))).size[0] > 28


def test_concurrent_requests_are_batched_and_all_answered(server):
    def one(_):
        return httpx.post(f"{server.url}/v1/models/c/predict", files={"file": ("d.png", digit())}, timeout=30)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(32)))
    assert all(a.status_code == 200 for a in answers)
    assert len({a.json()["results"][0]["class"] for a in answers}) == 1  # the same image, the same answer


@pytest.mark.parametrize("files, data, status, says", [
    ({"file": ("x.png", b"this is text, not a PNG")}, None, 400, "not a readable image"),
    ({"file": ("x.png", digit()[:60])}, None, 400, "not a readable image"),
    ({"file": ("x.png", huge_png_header())}, None, 413, "too many pixels"),
    ({"file": ("x.png", huge_png_header(7000, 7000))}, None, 413, "7,000 x 7,000"),
    ({"file": ("x.png", b"")}, None, 400, "empty"),
    ({"image": ("x.png", digit())}, None, 422, "'file'"),
    ({"file": ("x.png", b"\0" * (2**20 + 10))}, None, 413, "limit"),
    ({"file": ("x.png", digit())}, {"top_k": "0"}, 422, "top_k"),
])
def test_bad_uploads_get_a_4xx_and_one_line_json(server, files, data, status, says):
    r = httpx.post(f"{server.url}/v1/models/c/predict", files=files, data=data)
    assert r.status_code == status and says in r.json()["error"] and "\n" not in r.json()["error"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_unknown_model_and_wrong_verb(server):
    r = httpx.post(f"{server.url}/v1/models/nope/predict", files={"file": ("d.png", digit())})
    assert r.status_code == 404 and "GET /v1/models" in r.json()["error"]
    r = httpx.post(f"{server.url}/v1/models/g/predict", files={"file": ("d.png", digit())})
    assert r.status_code == 400 and "generate" in r.json()["error"]
    r = httpx.post(f"{server.url}/v1/models/g/generate", data={"n": "2", "class": "cat"})
    assert r.status_code == 422


def test_an_api_key_guards_the_models_and_other_hosts_need_one(runs, start_server, cli):
    s = start_server(make_app([str(runs["classify"])], api_key="s3cret"))
    try:
        assert httpx.get(f"{s.url}/v1/models").status_code == 401
        assert httpx.get(f"{s.url}/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(f"{s.url}/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{s.url}/healthz").status_code == 200
    finally:
        s.stop()
    r = cli("serve", runs["classify"], "--host", "0.0.0.0", "--api-key", "")
    assert r.returncode == 2 and "--api-key" in r.stderr
