"""The kiosk in a real headless Chromium (Debian's chromium + chromium-driver; nothing downloaded).

The server runs as the installed ``edgehisto serve`` in its own process on a free loopback port;
Selenium uploads a tile through the page's real file input and waits for the label and overlay.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [kiosk] extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    # CI installs Debian's chromium and sets EDGEHISTO_REQUIRE_BROWSER: there, a missing browser fails.
    if os.environ.get("EDGEHISTO_REQUIRE_BROWSER") == "1":
        pytest.fail("EDGEHISTO_REQUIRE_BROWSER=1 but no chromium/chromedriver on PATH", pytrace=False)
    pytest.skip("no Chromium/ChromeDriver found (apt-get install chromium chromium-driver)", allow_module_level=True)
CONSOLE_SCRIPT = Path(sys.executable).with_name("edgehisto")
from benchmarks.kiosk_load import free_port, wait_healthy  # noqa: E402


@pytest.fixture
def server(tmp_path):
    port = free_port()
    process = subprocess.Popen([str(CONSOLE_SCRIPT), "serve", "--port", str(port)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)  # the load check's own start-up wait
    except SystemExit as failure:
        process.kill()
        pytest.fail(str(failure))
    yield url
    process.terminate()
    process.wait(timeout=30)


def browser(width: int, height: int):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    # The window size includes the browser's own bars; the page must get exactly the screen's pixels.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver


@pytest.mark.parametrize(("width", "height"), [(800, 480), (1920, 1080)])
def test_a_tile_uploaded_through_the_page_shows_the_apis_label_and_an_overlay(server, tmp_path, width, height):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    tile = tmp_path / "tile.png"
    rng = np.random.default_rng(3)
    cv2.imwrite(str(tile), rng.integers(120, 230, (50, 50, 3), dtype=np.uint8))
    request = urllib.request.Request(f"{server}/api/classify", data=tile.read_bytes(), method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=60) as response:
        expected = json.loads(response.read())["record"]["label"]

    driver = browser(width, height)
    try:
        driver.get(server)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "banner").is_displayed())
        assert "Verified on this device" in driver.find_element(By.ID, "banner").text
        assert "not a diagnostic device" in driver.find_element(By.ID, "intended-use").text
        driver.find_element(By.ID, "file").send_keys(str(tile))
        WebDriverWait(driver, 60).until(ready.text_to_be_present_in_element((By.ID, "label"), "IDC"))
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("const i = document.getElementById('overlay');"
                                       "return i.complete && i.naturalWidth > 0;"))
        assert driver.find_element(By.ID, "label").text == expected
        assert driver.find_element(By.ID, "overlay").is_displayed()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#history button")) >= 2  # the API's and the page's
        # The latency line sits above the fold.
        assert driver.execute_script("return document.getElementById('latency').getBoundingClientRect().bottom") \
            <= height
        # Nothing overflows the small screen sideways.
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        assert driver.execute_script("return document.documentElement.scrollHeight") <= height
        out = Path(os.environ.get("EDGEHISTO_SCREENSHOTS", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(out / f"kiosk-{width}x{height}.png"))
    finally:
        driver.quit()


def test_before_any_image_the_page_shows_no_empty_image_boxes(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(800, 480)
    try:
        driver.get(server)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "banner").is_displayed())
        # `.result { display: flex }` once beat the hidden attribute: two grey boxes with broken-image icons.
        assert driver.execute_script("return getComputedStyle(document.getElementById('result')).display") == "none"
        visible_images = driver.execute_script(
            "return [...document.images].filter(i => i.getBoundingClientRect().width > 0).length")
        assert visible_images == 0
        shot = tmp_path / "empty.png"
        assert driver.save_screenshot(str(shot))
        # The screenshot check: right of the input column, where the result goes, the page is the plain
        # background (#f4f4f2), not the #ddd of an empty image box.
        pixels = cv2.imread(str(shot))[150:400, 260:780]
        assert np.all(np.abs(pixels.astype(int) - (242, 244, 244)) <= 2)
    finally:
        driver.quit()


def test_a_region_mapped_through_the_page_shows_the_map_and_the_same_counts_as_the_map_command(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    region = tmp_path / "region.png"
    rng = np.random.default_rng(5)
    pixels = np.full((150, 250, 3), 245, np.uint8)  # glass, with a block of stained tissue in the middle
    pixels[25:125, 50:200] = rng.integers(60, 200, (100, 150, 3), dtype=np.uint8) * np.array([0.8, 0.4, 0.9])
    cv2.imwrite(str(region), pixels)
    done = subprocess.run([str(CONSOLE_SCRIPT), "map", str(region), "--out", str(tmp_path / "m")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    tiles = json.loads((tmp_path / "m" / "summary.json").read_text())["tiles"]
    driver = browser(800, 480)
    try:
        driver.get(server)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "banner").is_displayed())
        driver.find_element(By.ID, "map-mode").click()
        driver.find_element(By.ID, "file").send_keys(str(region))
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("const i = document.getElementById('map-image');"
                                       "return i.complete && i.naturalWidth > 0;"))
        facts = driver.find_element(By.ID, "map-facts").text
        assert f"{tiles['classified']} tiles classified, {tiles['background']} background" in facts
        assert not driver.find_element(By.ID, "result").is_displayed()
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 800
        shot = tmp_path / "map.png"
        assert driver.save_screenshot(str(shot))
        # The screenshot shows the map: where it sits, the page is not the plain background.
        box = driver.execute_script("const r = document.getElementById('map-image').getBoundingClientRect();"
                                    "return [r.left, r.top, r.right, r.bottom].map(Math.round);")
        drawn = cv2.imread(str(shot))[box[1]:box[3], box[0]:box[2]]
        assert drawn.size and np.abs(drawn.astype(int) - (242, 244, 244)).max() > 60
    finally:
        driver.quit()
