"""The page of ``deepbatch serve`` in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium): photos dropped on it come back boxed, and two photos dropped in the comparison slots are
verified; with a face database, photos are registered and one is searched.
Skips, saying why, where Chromium, its driver or Selenium is not installed (``make install-test`` installs
them when it runs as root with apt)."""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi", reason="deepbatch serve needs the serve extra: pip install 'deepbatch[serve]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="the page test needs Selenium (pip install selenium)")

from test_serve import live_server  # noqa: E402  (tests/ is on sys.path)

from deepbatch.serve.app import ServeConfig  # noqa: E402
from deepbatch.serve.face_db import DatabaseChoice  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SCREENSHOT = Path("/tmp/serve_page.png")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1100"]

# Builds a File from base64 bytes and drops it on an element, as a drag from the desktop does.
DROP = """
const [selector, name, data] = arguments;
const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
const target = document.querySelector(selector);
target.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no Chromium installed (apt-get install chromium chromium-driver): the page test needs a real "
                    "headless browser")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def drop(driver: Any, selector: str, path: Path) -> None:
    driver.execute_script(DROP, selector, path.name, base64.b64encode(path.read_bytes()).decode("ascii"))


def test_page_boxes_dropped_photos_and_compares_two(browser: Any, dataset_dir: Path, weights_dir: Path) -> None:
    with live_server(ServeConfig()) as url:
        browser.get(url + "/")
        assert browser.title == "deepbatch"
        assert wait_for(browser, "return document.body.dataset.database;") == "none"
        assert not browser.find_element("id", "database").is_displayed()  # no database: no search panel
        drop(browser, "#drop", dataset_dir / "couple.jpg")
        faces = wait_for(browser, "const f = document.querySelector('figure.photo'); "
                                  "return f && f.dataset.faces;")
        assert faces == "2", browser.find_element("css selector", "figure.photo figcaption").text
        caption = browser.find_element("css selector", "figure.photo figcaption").text
        assert caption.startswith("couple.jpg: 2 face(s) (") and "%" in caption
        # the canvas holds the photo at its own size, with the boxes drawn on it
        size = browser.execute_script("const c = document.querySelector('figure.photo canvas'); "
                                      "return [c.width, c.height];")
        assert size == [2280, 1588]
        green = browser.execute_script(
            "const c = document.querySelector('figure.photo canvas'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4) "
            "if (d[i] === 0 && d[i + 1] === 200 && d[i + 2] === 83) n++; return n;")
        assert green > 1000  # the boxes' colour, #00c853
        browser.save_screenshot(str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000

        drop(browser, "#drop1", dataset_dir / "img1.jpg")
        drop(browser, "#drop2", dataset_dir / "img2.jpg")
        verified = wait_for(browser, "const v = document.getElementById('verdict'); "
                                     "return v.dataset.verified;")
        assert verified == "true", browser.find_element("id", "verdict").text
        assert browser.find_element("id", "verdict").text.startswith("Same person (distance ")

        drop(browser, "#drop", dataset_dir / "README.md")  # not an image: the error is shown on the page
        wait_for(browser, "return document.querySelectorAll('figure.photo').length === 2 && "
                          "document.querySelector('figure.photo').dataset.faces;")
        first = browser.find_element("css selector", "figure.photo figcaption")
        assert first.get_attribute("class") == "error" and "README.md" in first.text


def test_page_registers_dropped_photos_and_searches_one(browser: Any, dataset_dir: Path, weights_dir: Path,
                                                        tmp_path: Path) -> None:
    config = ServeConfig(database=DatabaseChoice("embedded", str(tmp_path / "faces.db")))
    with live_server(config) as url:
        browser.get(url + "/")
        assert wait_for(browser, "return document.body.dataset.database;") == "embedded"
        assert browser.find_element("id", "database").is_displayed()
        for name in ("img1.jpg", "img3.jpg"):  # not the same person (master.csv)
            drop(browser, "#dropRegister", dataset_dir / name)
        inserted = wait_for(browser, "const l = [...document.querySelectorAll('#registered li')]; "
                                     "return l.length === 2 && l.every((i) => i.dataset.inserted) && "
                                     "l.map((i) => i.dataset.inserted).sort().join(',');")
        assert inserted == "1,1", browser.find_element("id", "registered").text

        drop(browser, "#dropSearch", dataset_dir / "img2.jpg")  # the person of img1.jpg
        faces = wait_for(browser, "const f = document.querySelector('#matches figure'); "
                                  "return f && f.dataset.faces;")
        assert faces == "1", browser.find_element("id", "matches").text
        names = browser.execute_script("return [...document.querySelectorAll('#matches li')].map((i) => "
                                       "i.dataset.name);")
        assert names == ["img1.jpg"]  # img3.jpg is someone else: over the threshold, not listed
        assert browser.find_element("css selector", "#matches li").text.startswith("img1.jpg (distance 0.")
        browser.execute_script("document.getElementById('matches').scrollIntoView();")
        browser.save_screenshot(str(SCREENSHOT.with_name("serve_page_search.png")))
