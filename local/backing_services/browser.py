"""The browser of the log explorer's tests: Debian's ``chromium`` and ``chromium-driver``, installed with apt-get
when missing and running as root (as PostgreSQL and Redis are); as another user, a missing one is an error naming
the packages. Not a service: nothing runs until a test starts it (tests/e2e/browser.py)."""

from __future__ import annotations

import shutil

from .process import apt_install, say

PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver"}  # executable: Debian package


def missing() -> list[str]:
    """The packages whose executable is not on PATH."""
    return [package for executable, package in PACKAGES.items() if not shutil.which(executable)]


def ensure_browser() -> None:
    packages = missing()
    if packages:
        apt_install(packages, f"browser tests: {', '.join(packages)} not installed")
    say(f"browser: {shutil.which('chromium')} and {shutil.which('chromedriver')}")
