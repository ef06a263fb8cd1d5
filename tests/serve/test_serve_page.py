"""The served web page in headless Chromium (Playwright driving the system's Chromium): for each task, upload
or ask, see the answer, and keep a screenshot as a test artifact (tests/artifacts/page-TASK.png)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from deepix.serve.app import make_app

ARTIFACTS = Path(__file__).parents[1] / "artifacts"  # tests/artifacts


@pytest.fixture(scope="module")
def page(runs, start_server):
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the test command installs Chromium (apt-get install chromium); it is missing"
    server = start_server(make_app([str(runs[k]) for k in ("classify", "restore", "detect", "generate")]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1100, "height": 900})
        pg.goto(server.url)
        pg.wait_for_selector(".models button")
        yield pg
        browser.close()
    server.stop()


def image(tmp_path, name, a):
    path = tmp_path / name
    Image.fromarray(a).save(path)
    return path


@pytest.mark.parametrize("model, task, make, says", [
    ("c", "classify", lambda: (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8), "%"),
    ("d", "detect", lambda: skimage.data.astronaut()[::4, ::4], "found"),
    ("r", "restore", lambda: skimage.data.camera()[:64, :96], "restored"),
])
def test_the_page_answers_an_uploaded_image(page, tmp_path, model, task, make, says):
    page.click(f"button[data-name='{model}']")
    page.set_input_files("#pick", str(image(tmp_path, f"{task}.png", make())))
    page.wait_for_selector("#answer, #error", timeout=30_000)
    assert page.query_selector("#error") is None, page.inner_text("#error")
    assert says in page.inner_text("#answer")
    assert "ms in the model" in page.inner_text("#out")
    if task == "detect":
        assert page.eval_on_selector("#cv", "c => c.width") == 128
    if task == "restore":
        page.wait_for_function("document.querySelector('#res').naturalWidth === 96")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{task}.png"))
    assert (ARTIFACTS / f"page-{task}.png").stat().st_size > 5000


def test_the_page_generates_a_grid(page):
    page.click("button[data-name='g']")
    page.fill("#n", "8")
    page.click("#go")
    page.wait_for_selector("#answer", timeout=30_000)
    assert "8 new images" in page.inner_text("#answer")
    page.wait_for_function("document.querySelector('img.grid').naturalWidth > 28")
    page.screenshot(path=str(ARTIFACTS / "page-generate.png"))


def test_the_page_shows_a_bad_upload_as_one_line(page, tmp_path):
    page.click("button[data-name='c']")
    bad = tmp_path / "fake.png"
    bad.write_text("not an image")
    page.set_input_files("#pick", str(bad))
    page.wait_for_selector("#error", timeout=30_000)
    assert "not a readable image" in page.inner_text("#error")
