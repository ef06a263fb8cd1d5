"""`deepix serve`: a real server on a loopback port; every endpoint, batching, the API key, and bad uploads
answered with a 4xx and a one-line JSON error while the server stays healthy."""
import io
import struct
import threading
import time
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


def test_detections_are_the_boxes_the_run_finds_in_the_uploads_own_pixels(runs, detect_run, server, tmp_path):
    import deepix
    im = detect_run["data"].splits["train"][0]
    scene = np.asarray(im.image.permute(1, 2, 0)) if im.image is not None else np.asarray(Image.open(im.file).convert("RGB"))
    big = np.asarray(Image.fromarray(scene).resize((scene.shape[1] * 2, scene.shape[0] * 2), Image.NEAREST))
    Image.fromarray(big).save(tmp_path / "big.png")
    want = deepix.load(runs["detect"]).predict(str(tmp_path / "big.png"), conf=0.05)[0]
    r = httpx.post(f"{server.url}/v1/models/d/predict", files={"file": ("big.png", png(big))}, data={"conf": "0.05"})
    got = r.json()["results"][0]["detections"]
    assert len(got) == len(want["boxes"]) > 0
    np.testing.assert_allclose([d["box"] for d in got], np.asarray(want["boxes"]), atol=0.05)
    # the boxes are in the upload's own pixels: the same scene at half the size gives half the box
    small = httpx.post(f"{server.url}/v1/models/d/predict", files={"file": ("s.png", png(scene))},
                       data={"conf": "0.05"}).json()["results"][0]["detections"]
    top = lambda found: np.asarray(max(found, key=lambda d: d["score"])["box"])  # noqa: E731
    np.testing.assert_allclose(top(got), 2 * top(small), atol=3)
    # and the best box is the square's: IoU over 0.5 with the true box, doubled
    (x1, y1, x2, y2), (a1, b1, a2, b2) = top(got), im.boxes.numpy()[0] * 2
    inter = max(0, min(x2, a2) - max(x1, a1)) * max(0, min(y2, b2) - max(y1, b1))
    assert inter / ((x2 - x1) * (y2 - y1) + (a2 - a1) * (b2 - b1) - inter) > 0.5


def slowed(app, name, seconds):
    """The model's answers delayed by `seconds`; returns the list that counts the passes that started."""
    m = app.state.models[name]
    answer, started = m.pred.answer, []

    def slow(images, options):
        started.append(threading.current_thread().name)
        time.sleep(seconds)
        return answer(images, options)
    m.pred.answer = slow
    return started


def test_without_batching_work_is_bounded_503_when_full_504_past_the_limit(runs, start_server):
    app = make_app([str(runs["classify"])], batching=False, limits=Limits(timeout_s=0.5, queue=2))
    started = slowed(app, "c", 1.5)
    s = start_server(app)
    try:
        post = lambda _: httpx.post(f"{s.url}/v1/models/c/predict", files={"file": ("d.png", digit())}, timeout=10)  # noqa: E731
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, range(4)))
        assert sorted(a.status_code for a in answers) == [503, 503, 504, 504]
        assert all("\n" not in a.json()["error"] for a in answers)
        assert any("within 0.5 s" in a.json()["error"] for a in answers)
        time.sleep(1.5)
        # the request that timed out while waiting never ran, and one thread did all the work
        assert len(started) == 1 and started[0].startswith("deepix-c")
        assert app.state.models["c"].admitted == 0
        assert httpx.get(f"{s.url}/healthz").status_code == 200
    finally:
        s.stop()


def test_batched_requests_past_the_limit_get_504_and_the_service_answers_after(runs, start_server):
    app = make_app([str(runs["classify"])], limits=Limits(timeout_s=0.3))
    started = slowed(app, "c", 0.8)
    s = start_server(app)
    try:
        r = httpx.post(f"{s.url}/v1/models/c/predict", files={"file": ("d.png", digit())}, timeout=10)
        assert r.status_code == 504 and "within 0.3 s" in r.json()["error"]
        time.sleep(0.8)
        app.state.models["c"].limits.timeout_s = 5
        r = httpx.post(f"{s.url}/v1/models/c/predict", files={"file": ("d.png", digit())}, timeout=10)
        assert r.status_code == 200 and len(started) == 2
    finally:
        s.stop()


def multipart(name: str, data: bytes, boundary: str = "deepixboundary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


def test_bodies_are_refused_while_they_stream_in_chunked_or_not(runs, start_server):
    app = make_app([str(runs["classify"])], limits=Limits(max_bytes=20_000, max_files=2))
    s = start_server(app)
    headers = {"content-type": "multipart/form-data; boundary=deepixboundary"}
    try:
        body = multipart("d.png", digit())
        chunks = lambda b: (b[i:i + 4096] for i in range(0, len(b), 4096))  # noqa: E731  (no Content-Length)
        r = httpx.post(f"{s.url}/v1/models/c/predict", content=chunks(body), headers=headers)
        assert r.status_code == 200 and r.json()["results"][0]["class"]
        huge = multipart("big.png", b"\0" * 2_000_000)
        r = httpx.post(f"{s.url}/v1/models/c/predict", content=chunks(huge), headers=headers, timeout=10)
        assert r.status_code == 413 and "105,536 bytes, its limit" in r.json()["error"], r.text
        # with a Content-Length the header alone refuses it
        r = httpx.post(f"{s.url}/v1/models/c/predict", content=huge, headers=headers)
        assert r.status_code == 413 and "2,000," in r.json()["error"]
        assert httpx.get(f"{s.url}/healthz").status_code == 200
    finally:
        s.stop()


def test_an_exported_onnx_serves_without_batching_and_answers_as_the_run(runs, start_server, tmp_path):
    import deepix
    from deepix.export import export
    export(str(runs["classify"]), "onnx", str(tmp_path / "c.onnx"))
    s = start_server(make_app([str(tmp_path / "c.onnx")], batching=False))
    try:
        info = httpx.get(f"{s.url}/v1/models").json()["models"][0]
        assert info["name"] == "c" and info["batching"] is False and info["source"] == "c.onnx"
        r = httpx.post(f"{s.url}/v1/models/c/predict", files={"file": ("d.png", digit())}).json()["results"][0]
        (tmp_path / "d.png").write_bytes(digit())
        want = deepix.load(runs["classify"]).predict(str(tmp_path / "d.png"))[0]
        assert r["class"] == want["class"] and abs(r["top"][0]["probability"] - want["top"][0]["probability"]) < 1e-3
    finally:
        s.stop()


def test_serving_leaves_pils_limits_alone(runs):
    before = Image.MAX_IMAGE_PIXELS
    make_app([str(runs["classify"])], limits=Limits(max_pixels=1000))
    assert Image.MAX_IMAGE_PIXELS == before
