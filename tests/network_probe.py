"""Run only by ``test_offline.py`` (its name keeps pytest from collecting it): a test that tries to reach another
machine and swallows the error, which the ``no_network`` fixture must still fail."""

import urllib.error
import urllib.request


def test_swallowed_download_attempt() -> None:
    try:
        urllib.request.urlopen("https://github.com/deepinsight/insightface/releases", timeout=5)
    except (urllib.error.URLError, OSError):
        pass  # an offline code path would carry on: the guard must still fail the test
