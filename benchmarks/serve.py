"""Load on `deepix serve` from a second process on loopback: throughput, p50/p99 latency and errors for a
classifier with and without request batching, in eager PyTorch and through onnxruntime (its export).

    python benchmarks/serve.py [--run RUN] [--requests 2000] [--concurrency 8] [--threads 2]

Without --run it trains a small classifier first (vgg7 on mnist-5k, 3 epochs). Prints a markdown table;
the figures go to docs/benchmarks.md."""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digits(n: int = 64) -> list[bytes]:
    from PIL import Image

    from deepix.data.builtin import load_builtin
    ds = load_builtin("mnist-5k", 0.1, 0.2, 0)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(ds.test.x[i, 0].numpy()).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def load(url: str, name: str, images: list[bytes], requests: int, concurrency: int) -> dict:
    import httpx
    client = httpx.Client(timeout=60)
    for i in range(20):  # warm-up, not counted
        client.post(f"{url}/v1/models/{name}/predict", files={"file": ("d.png", images[i % len(images)])})

    def one(i):
        t0 = time.perf_counter()
        try:
            r = client.post(f"{url}/v1/models/{name}/predict", files={"file": ("d.png", images[i % len(images)])})
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        return time.perf_counter() - t0, ok

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results]) * 1000
    return {"rps": requests / wall, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "errors": sum(not r[1] for r in results)}


def serve(source: str, port: int, batching: bool, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "deepix", "serve", source, "--port", str(port)] + ([] if batching else ["--no-batching"])
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit(f"the server did not start: {p.stderr.read().decode()[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a classify run (default: train a small one)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="threads of the server's process")
    a = ap.parse_args()
    run = a.run
    if not run:
        out = Path(tempfile.mkdtemp(prefix="deepix-serve-bench-"))
        subprocess.run([sys.executable, "-m", "deepix", "train", "--epochs", "3", "--project", str(out), "--name", "c",
                        "--quiet", "--threads", str(a.threads)], check=True, stdout=subprocess.DEVNULL)
        run = str(out / "classify" / "c")
    onnx = str(Path(run) / "weights" / "best.onnx")
    subprocess.run([sys.executable, "-m", "deepix", "export", run, "-o", onnx], check=True, stdout=subprocess.DEVNULL)
    images = digits()
    rows = []
    for label, source in (("eager PyTorch", run), ("onnxruntime", onnx)):
        for batching in (True, False):
            port = free_port()
            proc = serve(source, port, batching, a.threads)
            try:
                name = Path(source).stem if source.endswith(".onnx") else Path(source).name
                m = load(f"http://127.0.0.1:{port}", name, images, a.requests, a.concurrency)
            finally:
                proc.terminate()
                proc.wait(10)
            rows.append([label, "on" if batching else "off", f"{m['rps']:,.0f}", f"{m['p50']:.1f}", f"{m['p99']:.1f}",
                         str(m["errors"])])
            print(json.dumps({"backend": label, "batching": batching, **m}), file=sys.stderr)
    print(f"\n{a.requests} requests of one 28x28 PNG, {a.concurrency} at a time from a second process; the server "
          f"on {a.threads} threads; vgg7 classifier\n")
    print("| backend | batching | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
