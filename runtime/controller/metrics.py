"""The controller's Prometheus metrics, in the text exposition format (0.0.4), served with the
standard library:

    GET /metrics   netplug_controller_reconciles_total{kind}        counter
                   netplug_controller_reconcile_errors_total{kind}  counter
                   netplug_controller_reconcile_duration_seconds{kind}  histogram
                   netplug_controller_leader                        gauge (1 while leading)
                   netplug_controller_queue_depth                   gauge
    GET /healthz   "ok" (the process serves)

`kind` is `vm` or `vmi`.

May import: the standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "netplug_controller_"


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reconciles: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.leader = 0
        self.queue_depth: Callable[[], int] = lambda: 0

    def observe(self, kind: str, seconds: float, failed: bool) -> None:
        with self._lock:
            self.reconciles[kind] = self.reconciles.get(kind, 0) + 1
            if failed:
                self.errors[kind] = self.errors.get(kind, 0) + 1
            counts = self.buckets.setdefault(kind, [0] * len(BUCKETS))
            for n, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[n] += 1
            self.sums[kind] = self.sums.get(kind, 0.0) + seconds

    def render(self) -> str:
        with self._lock:
            kinds = sorted(self.reconciles)
            lines = [f"# HELP {PREFIX}reconciles_total Reconciles run, by kind of object.",
                     f"# TYPE {PREFIX}reconciles_total counter"]
            lines += [f'{PREFIX}reconciles_total{{kind="{k}"}} {self.reconciles[k]}' for k in kinds]
            lines += [f"# HELP {PREFIX}reconcile_errors_total Reconciles that failed and were retried.",
                      f"# TYPE {PREFIX}reconcile_errors_total counter"]
            lines += [f'{PREFIX}reconcile_errors_total{{kind="{k}"}} {self.errors.get(k, 0)}' for k in kinds]
            lines += [f"# HELP {PREFIX}reconcile_duration_seconds How long a reconcile took.",
                      f"# TYPE {PREFIX}reconcile_duration_seconds histogram"]
            for k in kinds:
                for bound, count in zip(BUCKETS, self.buckets[k], strict=True):
                    lines.append(f'{PREFIX}reconcile_duration_seconds_bucket{{kind="{k}",le="{_number(bound)}"}} {count}')
                lines.append(f'{PREFIX}reconcile_duration_seconds_bucket{{kind="{k}",le="+Inf"}} {self.reconciles[k]}')
                lines.append(f'{PREFIX}reconcile_duration_seconds_sum{{kind="{k}"}} {self.sums[k]!r}')
                lines.append(f'{PREFIX}reconcile_duration_seconds_count{{kind="{k}"}} {self.reconciles[k]}')
            lines += [f"# HELP {PREFIX}leader 1 while this process leads.", f"# TYPE {PREFIX}leader gauge",
                      f"{PREFIX}leader {self.leader}"]
            lines += [f"# HELP {PREFIX}queue_depth Keys waiting for a worker.", f"# TYPE {PREFIX}queue_depth gauge",
                      f"{PREFIX}queue_depth {self.queue_depth()}"]
        return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def log_message(self, fmt: str, *args: object) -> None:  # scrapes are not news
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/metrics":
            body, kind, code = self.server.metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8", 200
        elif self.path == "/healthz":
            body, kind, code = b"ok\n", "text/plain", 200
        else:
            body, kind, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: Metrics) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="metrics", daemon=True)
        thread.start()
        return thread
