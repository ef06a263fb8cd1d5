"""The HTTP service: runs (or exported files) loaded once, requests batched per model through a bounded
queue, work bounded per model (503 when full, 504 past the time limit), bodies refused as they stream in
once past the limit, uploads decoded safely, one-line JSON errors, a web page."""
from __future__ import annotations

import asyncio
import hmac
import io
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from starlette.exceptions import HTTPException

from ..api import load
from ..errors import UserError
from .encode import png_base64


@dataclass
class Limits:
    max_bytes: int = 10 * 2**20        # one upload
    max_pixels: int = 40_000_000       # width x height, read from the header before any decoding
    max_files: int = 32                # images in one request
    max_batch: int = 32                # images in one forward pass
    max_wait_ms: float = 5.0           # how long a batch waits for company
    queue: int = 256                   # requests waiting per model; more are refused (503)
    timeout_s: float = 30.0            # a request not answered by then gets 504

    @property
    def max_body(self) -> int:
        """A whole request body: every file at its limit, and room for the form's fields and headers."""
        return self.max_bytes * self.max_files + 2**16


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def decode(data: bytes, limits: Limits) -> Image.Image:
    """An upload as a PIL image, or Refused: too large, too many pixels (checked on the header, so a small
    file that claims 30,000 x 30,000 pixels is refused before it is decompressed), or not an image."""
    if not data:
        raise Refused(400, "the upload is empty")
    if len(data) > limits.max_bytes:
        raise Refused(413, f"the upload is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
        if w * h > limits.max_pixels:
            raise Refused(413, f"the image has too many pixels ({w:,} x {h:,}; the limit is {limits.max_pixels:,})")
        im.load()  # a truncated or corrupt file fails here
    except Refused:
        raise
    except Image.DecompressionBombError:
        raise Refused(413, "the image has too many pixels (decompression bomb refused)") from None
    except Exception as e:  # PIL raises many kinds for bad data (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise Refused(400, f"the upload is not a readable image ({type(e).__name__})") from None
    return im


class Model:
    """One run (or exported file) loaded once, with its batcher and its one thread of work."""

    def __init__(self, name: str, source: str, batching: bool, limits: Limits):
        self.name, self.source, self.limits = name, source, limits
        self.pred = load(source)
        self.task = self.pred.task
        self.batching = batching and self.pred.batching
        self.queue: asyncio.Queue | None = None
        # one forward pass at a time per model, on one thread: a pass that outlives its request's time
        # limit finishes there but spawns nothing, and what waits behind it is bounded by `admitted`
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"deepix-{name}")
        self.admitted = 0  # calls waiting for or running on the pool (counted on the event loop)

    def info(self) -> dict:
        return {"name": self.name, "task": self.task, "classes": self.pred.classes, "batching": self.batching,
                "makes_images": self.pred.makes_images, "source": Path(self.source).name}

    def run(self, images: list[Image.Image], options: dict) -> list[dict]:
        """The answers for a list of images (one forward pass where the task allows)."""
        return self.pred.answer(images, options)

    async def call(self, fn, *args):
        """fn(*args) on the model's thread: 503 when `queue` calls already wait there, 504 when it is not done
        within the time limit. A call that timed out before it started is dropped; one already running
        finishes and keeps its place until then."""
        if self.admitted >= self.limits.queue:
            raise Refused(503, f"{self.name} has {self.admitted} requests waiting; try again shortly")
        loop = asyncio.get_running_loop()
        self.admitted += 1
        work: Future = self.pool.submit(fn, *args)
        work.add_done_callback(lambda _: _soon(loop, self._release))
        done, _ = await asyncio.wait({asyncio.wrap_future(work)}, timeout=self.limits.timeout_s)
        if not done:
            work.cancel()
            raise Refused(504, f"{self.name} did not answer within {self.limits.timeout_s:g} s")
        return done.pop().result()

    def _release(self) -> None:
        self.admitted -= 1

    async def submit(self, images: list[Image.Image], options: dict) -> list[dict]:
        if not self.batching:
            return await self.call(self.run, images, options)
        loop = asyncio.get_running_loop()
        futures = []
        for im in images:
            fut = loop.create_future()
            try:
                self.queue.put_nowait((im, options, fut))
            except asyncio.QueueFull:
                for f in futures:
                    f.cancel()  # the images already queued are not worked on
                raise Refused(503, f"{self.name} has {self.limits.queue} requests waiting; try again shortly") from None
            futures.append(fut)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*futures), self.limits.timeout_s))
        except asyncio.TimeoutError:  # gather cancelled the futures: the worker skips what has not started
            raise Refused(504, f"{self.name} did not answer within {self.limits.timeout_s:g} s") from None

    async def worker(self) -> None:
        """Takes what is waiting (up to max_batch, waiting max_wait_ms for more) and answers it in one pass."""
        while True:
            first = await self.queue.get()
            batch = [first]
            deadline = time.perf_counter() + self.limits.max_wait_ms / 1000
            while len(batch) < self.limits.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            # requests with different options (top_k, conf) are answered by one pass with the first's options
            # only when they agree; the rest go in their own pass
            groups: dict[str, list] = {}
            for item in batch:
                if item[2].done():  # its request timed out or went away while it waited
                    continue
                groups.setdefault(repr(sorted(item[1].items())), []).append(item)
            for items in groups.values():
                try:
                    answers = await asyncio.get_running_loop().run_in_executor(
                        self.pool, self.run, [i[0] for i in items], items[0][1])
                    for (_, _, fut), a in zip(items, answers):
                        if not fut.done():
                            fut.set_result(a)
                except Exception as e:  # a failure answers every request of the pass, and the worker goes on
                    for _, _, fut in items:
                        if not fut.done():
                            fut.set_exception(e)


def _soon(loop: asyncio.AbstractEventLoop, fn) -> None:
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # the loop has closed: the service is stopping
        pass


class BodyLimit:
    """ASGI middleware: answers 413 as soon as a request body passes `limit` bytes while it streams in,
    whether or not it said its length (chunked uploads carry no Content-Length). The app is then told the
    client went away, and whatever it answers to that is dropped."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen, started, refused = 0, False, False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not started:
                refused = True
                body = json.dumps({"error": f"the request passed {self.limit:,} bytes, its limit"}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return {"type": "http.disconnect"}
            return message

        async def sent(message):
            nonlocal started
            if refused:
                return
            started = True
            await send(message)
        await self.app(scope, counted, sent)


def make_app(sources: list[str], api_key: str | None = None, batching: bool = True, limits: Limits | None = None):
    """The FastAPI app serving these runs or exported files."""
    limits = limits or Limits()
    models: dict[str, Model] = {}
    for src in sources:
        stem = Path(src).stem if Path(src).suffix in (".onnx", ".torchscript") else Path(src).name
        name, i = stem, 2
        while name in models:
            name, i = f"{stem}-{i}", i + 1
        models[name] = Model(name, src, batching, limits)

    @asynccontextmanager
    async def lifespan(app):
        tasks = []
        for m in models.values():
            if m.batching:
                m.queue = asyncio.Queue(limits.queue)
                tasks.append(asyncio.create_task(m.worker()))
        yield
        for t in tasks:
            t.cancel()
        for m in models.values():
            m.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="deepix", version="1", lifespan=lifespan,
                  description="Models trained with deepix: classify, detect, segment, restore, generate.")
    app.state.models = models

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)

    @app.exception_handler(Refused)
    async def refused(request, exc: Refused):
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error(422, f"{where}: {first.get('msg', 'invalid')} (send images as multipart field 'file' or 'files')")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return error(401, "a valid API key is needed (header X-API-Key or Authorization: Bearer KEY)")
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > limits.max_body:
            return error(413, f"the request is {int(size):,} bytes; the limit is {limits.max_body:,}")
        return await call_next(request)

    app.add_middleware(BodyLimit, limit=limits.max_body)

    def model_named(name: str) -> Model:
        if name not in models:
            raise Refused(404, f"no model named {name!r}; GET /v1/models lists them")
        return models[name]

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": len(models)}

    @app.get("/v1/models")
    async def list_models():
        return {"models": [m.info() for m in models.values()]}

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, file: UploadFile | None = File(None), files: list[UploadFile] | None = File(None),
                      top_k: int = Form(5), conf: float = Form(0.25), max_det: int = Form(100),
                      start: str | None = Form(None), goal: str | None = Form(None)):
        m = model_named(name)
        if m.pred.makes_images:
            raise Refused(400, f"{name} makes images: POST /v1/models/{name}/generate")
        uploads = ([file] if file is not None else []) + list(files or [])
        if not uploads:
            raise Refused(422, "no image: send it as multipart field 'file' (or several as 'files')")
        if len(uploads) > limits.max_files:
            raise Refused(413, f"{len(uploads)} images in one request; the limit is {limits.max_files}")
        images = [decode(await u.read(limits.max_bytes + 1), limits) for u in uploads]
        if not (1 <= top_k <= 1000 and 0 <= conf < 1 and 1 <= max_det <= 1000):
            raise Refused(422, "top_k must be in [1, 1000], conf in [0, 1), max_det in [1, 1000]")
        try:
            options = m.pred.options({"top_k": top_k, "conf": conf, "max_det": max_det, "start": start, "goal": goal})
            t0 = time.perf_counter()
            results = await m.submit(images, options)
        except UserError as e:  # e.g. a navigate start inside a wall
            raise Refused(422, str(e)) from None
        return {"model": name, "task": m.task, "results": results, "ms": round((time.perf_counter() - t0) * 1000, 1)}

    @app.post("/v1/models/{name}/generate")
    async def generate(name: str, n: int = Form(16), cls: str | None = Form(None, alias="class"), seed: int = Form(0)):
        m = model_named(name)
        if not m.pred.makes_images:
            raise Refused(400, f"{name} is a {m.task} model: POST /v1/models/{name}/predict")
        if not 1 <= n <= 256:
            raise Refused(422, "n must be in [1, 256]")
        t0 = time.perf_counter()
        try:
            g = await m.call(m.pred.grid, n, cls, seed)
        except UserError as e:
            raise Refused(422, str(e)) from None
        return {"model": name, "task": m.task, "n": n, "grid": png_base64(g),
                "ms": round((time.perf_counter() - t0) * 1000, 1)}

    page = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page

    return app


def serve(sources: list[str], host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          batching: bool = True, limits: Limits | None = None) -> None:
    import uvicorn  # uvicorn: only deepix serve needs it
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        raise UserError(f"serving on {host} opens the models to the network: pass --api-key KEY "
                        "(or set DEEPIX_API_KEY), or keep the default 127.0.0.1")
    app = make_app(sources, api_key, batching, limits)
    print(f"deepix serve: {len(sources)} model(s) on http://{host}:{port}/  (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
