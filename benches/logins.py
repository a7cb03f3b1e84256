"""Logs in to the Hearth console in a loop from several threads, as a browser does (GET the
form for its CSRF token and cookie, POST the credentials), for a fixed time.

    python3 benches/logins.py HOST:PORT EMAIL PASSWORD THREADS SECONDS

Prints: logins, logins/s, mean and 95th-percentile login latency (the POST) in ms.
"""
import http.cookiejar
import re
import sys
import threading
import time
import urllib.parse
import urllib.request

host, email, password, threads, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
base = f"http://{host}"
latencies, failures = [], []
lock = threading.Lock()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def worker(deadline):
    while time.time() < deadline:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        page = opener.open(f"{base}/console/login").read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, "email": email, "password": password}).encode()
        start = time.perf_counter()
        try:
            opener.open(f"{base}/console/login", data=body)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            (latencies if status == 303 else failures).append(elapsed)


deadline = time.time() + seconds
pool = [threading.Thread(target=worker, args=(deadline,)) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
if failures:
    sys.exit(f"{len(failures)} logins failed")
latencies.sort()
p95 = latencies[int(len(latencies) * 0.95) - 1] if latencies else 0
print(f"{len(latencies)} {len(latencies) / seconds:.1f} {sum(latencies) / max(len(latencies), 1):.1f} {p95:.1f}")
