"""Load test: N concurrent gradio_client sessions, each making M /predict calls against the running app.

    python app.py &                                          # the app, on http://127.0.0.1:7860
    python tests/tools/load_test.py                          # 20 users x 50 calls
    python tests/tools/load_test.py --users 20 --calls 10 --start-app   # starts and stops its own app

Loopback only (127.0.0.1 / localhost / ::1): this is a load generator, not for pointing at other
people's servers. Bounded in time (--max-seconds, default 900): calls still waiting at the deadline
are counted as errors and it stops by itself. Reports errors, latency p50/p95/max and throughput;
exit status 1 if any call failed.
"""
from __future__ import annotations

import argparse
import collections
import ipaddress
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        sys.exit(f"load_test: cannot resolve {host!r}")
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        sys.exit(f"load_test: refusing {url}: only loopback addresses (127.0.0.1, localhost, ::1) are allowed")
    return url if url.endswith("/") else url + "/"


def default_image(workdir: Path) -> Path:
    repo = HERE.parents[1]
    afw = Path(os.environ.get("FACELM_SHARED_DATA", repo.parent / "shared" / "data")) / "300w" / "afw"
    photos = sorted(afw.glob("*.jpg"))
    if photos:
        return photos[0]
    from _app_helpers import tiny_photo
    return tiny_photo(workdir / "load_test.png", size=(240, 240))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run(url: str, users: int, calls: int, image: Path, max_seconds: float, scheme: str = "ibug68") -> dict:
    from gradio_client import Client, handle_file

    deadline = time.monotonic() + max_seconds
    latencies: list[float] = []
    errors: collections.Counter = collections.Counter()
    faces: collections.Counter = collections.Counter()
    lock = threading.Lock()
    started = threading.Barrier(users + 1)

    def user(k: int) -> None:
        try:
            client = Client(url, verbose=False, download_files=False)
        except Exception as e:  # noqa: BLE001 - counted
            with lock:
                errors[f"connect: {type(e).__name__}: {str(e)[:120]}"] += calls
            started.wait()
            return
        started.wait()
        try:
            for _ in range(calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    with lock:
                        errors["not started before the deadline"] += 1
                    continue
                t = time.monotonic()
                try:
                    job = client.submit(handle_file(str(image)), scheme, "", False, api_name="/predict")
                    result = job.result(timeout=left)
                except Exception as e:  # noqa: BLE001 - counted
                    with lock:
                        errors[f"{type(e).__name__}: {str(e)[:160]}"] += 1
                    continue
                with lock:
                    latencies.append(time.monotonic() - t)
                    faces[len(result[2].get("faces", [])) if isinstance(result[2], dict) else -1] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(users)]
    for t in threads:
        t.start()
    started.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 30)
    wall = time.monotonic() - t0
    ok = len(latencies)
    return {"users": users, "calls_per_user": calls, "requested": users * calls, "ok": ok,
            "errors": sum(errors.values()), "error_kinds": dict(errors), "wall_s": wall,
            "throughput_per_s": ok / wall if wall else float("nan"),
            "p50_s": percentile(latencies, 0.5), "p95_s": percentile(latencies, 0.95),
            "max_s": max(latencies, default=float("nan")), "mean_s": statistics.fmean(latencies) if latencies else
            float("nan"), "faces_per_result": dict(faces), "stragglers": sum(t.is_alive() for t in threads)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("FACELM_URL", "http://127.0.0.1:7860/"))
    ap.add_argument("--users", type=int, default=20, help="concurrent sessions (default 20)")
    ap.add_argument("--calls", type=int, default=50, help="predict calls per session (default 50)")
    ap.add_argument("--image", type=Path, help="photo to send (default: a 300-W AFW photo, or a generated one)")
    ap.add_argument("--max-seconds", type=float, default=900, help="stop after this long (default 900)")
    ap.add_argument("--start-app", action="store_true", help="start app.py on a free loopback port, stop it after")
    args = ap.parse_args(argv)

    server = None
    if args.start_app:
        from _app_helpers import AppServer
        server = AppServer()
        print(f"starting app.py on {server.url} ...", flush=True)
        t = time.monotonic()
        server.start()
        print(f"app up in {time.monotonic() - t:.1f} s", flush=True)
        url = server.url
    else:
        url = loopback_only(args.url)
    try:
        image = args.image or default_image(Path(server.workdir) if server else Path("/tmp"))
        print(f"load test: {args.users} sessions x {args.calls} /predict calls on {url} with {image.name} "
              f"({image.stat().st_size / 1024:.0f} kB), at most {args.max_seconds:.0f} s", flush=True)
        r = run(url, args.users, args.calls, image, args.max_seconds)
    finally:
        if server is not None:
            server.stop()
            import shutil
            shutil.rmtree(server.workdir, ignore_errors=True)
    print(f"calls: {r['ok']} ok, {r['errors']} errors of {r['requested']}")
    print(f"latency: p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s, max {r['max_s']:.2f} s, mean {r['mean_s']:.2f} s")
    print(f"throughput: {r['throughput_per_s']:.2f} calls/s over {r['wall_s']:.1f} s")
    print(f"faces per result: {r['faces_per_result']}")
    for kind, n in r["error_kinds"].items():
        print(f"  error x{n}: {kind}")
    return 1 if r["errors"] or r["stragglers"] else 0


if __name__ == "__main__":
    sys.exit(main())
