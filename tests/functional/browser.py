"""Debian's headless Chromium, driven through Debian's chromedriver by
selenium (tools/run-tests.sh installs both packages). Both paths are
given, so that selenium never looks for or downloads a browser."""

import os
import shutil

from selenium import webdriver
from selenium.webdriver.chrome import service
from selenium.webdriver.support import ui

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]
TIMEOUT = 60


def chromium(profile_dir):
    """A new headless Chromium with a profile of its own in profile_dir;
    its console messages are kept for browser_log()."""
    for path, package in ((CHROMIUM, "chromium"),
                          (CHROMEDRIVER, "chromium-driver")):
        assert os.access(path, os.X_OK), \
            f"{path} is missing: install Debian's {package} package"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=service.Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(TIMEOUT)
    return driver


def wait(driver, condition, timeout=TIMEOUT):
    """What condition(driver) returns once it is true."""
    return ui.WebDriverWait(driver, timeout).until(condition)


def body_data(driver, name):
    """The page's document.body.dataset[name], or None."""
    return driver.execute_script(
        "return document.body.dataset[arguments[0]] ?? null;", name)


def console(driver):
    """The console messages (and CSP reports) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser")]
