"""The status page in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven
with selenium): it loads, shows the devices grouped with units and words, and its values change
without a reload (server-sent events); full-page screenshots at laptop and phone widths go to
``test-artefacts/statuspage/`` (or ``$PUMPROOM_ARTEFACTS``)."""

from __future__ import annotations

import base64
import shutil
import time

import pytest

from tests.procs import AgentProc
from tests.tools.conftest import ARTEFACTS

webdriver = pytest.importorskip("selenium.webdriver")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking")  # fmt: skip
SIZES = {"laptop": (1366, 900), "phone": (390, 844)}


def _browser(width: int, height: int):  # type: ignore[no-untyped-def]
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail("chromium and chromium-driver (Debian packages) are needed: see .ci/run")
    opts = Options()
    opts.binary_location = binary
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def _screenshot(browser, name: str) -> None:  # type: ignore[no-untyped-def]
    """``name.png`` (the whole page) and ``name-top.png`` (the first screen)."""
    out = ARTEFACTS / "statuspage"
    out.mkdir(parents=True, exist_ok=True)
    for suffix, full in (("", True), ("-top", False)):
        shot = browser.execute_cdp_cmd(
            "Page.captureScreenshot", {"captureBeyondViewport": full, "format": "png"}
        )
        (out / f"{name}{suffix}.png").write_bytes(base64.b64decode(shot["data"]))


def _text(browser, element_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(browser.execute_script(f"return document.getElementById('{element_id}').innerText"))


def test_the_page_updates_live_without_a_reload(live: AgentProc) -> None:
    url = f"http://127.0.0.1:{live.status_port}/"
    for label, (w, h) in SIZES.items():
        browser = _browser(w, h)
        try:
            mobile = label == "phone"
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
            )
            browser.get(url)
            browser.execute_script("window.loadedOnce = 'yes'")  # gone if the page reloads
            deadline = time.monotonic() + 30
            first = _text(browser, "dev-flowmeter")
            while _text(browser, "dev-flowmeter") == first:  # the meter's flow moves every tick
                assert time.monotonic() < deadline, "no live update within 30 s"
                time.sleep(0.3)
            assert browser.execute_script("return window.loadedOnce") == "yes"
            devices = _text(browser, "devices")
            assert "m³/h" in devices and "MPa" in devices and "Hz" in devices
            assert "stopped" in devices or "running (forward)" in devices  # INVT 2100H in words
            assert "constant pressure (p-c)" in _text(browser, "control")
            assert browser.find_elements("css selector", "#trends svg path.line")
            time.sleep(3)  # a few trend points
            _screenshot(browser, label)
        finally:
            browser.quit()
