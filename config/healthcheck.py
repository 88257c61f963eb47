"""The container's HEALTHCHECK: is this process serving HTTP? `python config/healthcheck.py [URL]`.

Exit 0 when the URL answers 2xx, or 503 from /health (the web process is up; the check names the dependency
that is down, and restarting this container would not fix it). Plain standard library: no Django start-up cost.
"""
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health"


def main(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if 200 <= response.status < 300 else 1
    except urllib.error.HTTPError as error:
        return 0 if error.code == 503 and url.endswith("/health") else 1
    except Exception as error:  # refused, timed out, reset: not serving
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL))
