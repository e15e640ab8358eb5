"""Ray's side of the submit-to-placed bench (issue 16): how fast a local Ray starts tasks and actors.

    python ray_tasks.py IN.json OUT.json

IN.json: {"num_cpus": 2, "tasks": 3000, "rate_per_s": 1000, "actors": 200, "temp_dir": DIR,
"custom_resources": {...} (optional)}. A local `ray.init(num_cpus=...)` is warmed up with a few
hundred no-op tasks (not measured), then:

- burst: `tasks` no-op tasks, each with Ray's default `num_cpus=1` (so at most `num_cpus` run at
  once: the peer the issue measured, "3,000 tasks ... num_cpus=1"), submitted all at once. A
  task's latency is its start (the time.time() it returns) minus its submission; the rate is
  tasks / (the last start - the first submission).
- paced: `tasks` no-op tasks submitted at `rate_per_s` (each at its due time, in whatever small
  batch is due every ~1 ms); the same latency, the submission rate achieved, and the steady
  state: the p50 over the second half of the tasks, once any start-up backlog has formed.
- actors: `actors` actors (`num_cpus=0`, so they do not queue behind one another for CPUs) each
  created and pinged once; latency is creation to the ping running in the actor, and the rate is
  actors / (the last ping seen by the driver - the first creation). Killed afterwards.

Task starts are the workers' wall clock, submissions the driver's: one machine, one clock.

OUT.json: {"ray_version", "num_cpus", "init_s", "burst": {...}, "paced": {...}, "actors": {...},
"wall_s"}; rates per second, spans in seconds, latencies in ms as {"p50", "p99", "max"}.
"""
import json
import logging
import math
import signal
import sys
import time

import ray


def noop():
    return time.time()


class Pinger:
    def ping(self):
        return time.time()


def quantile(xs, q):
    """Nearest-rank quantile of a non-empty list."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def latency_ms(xs):
    return {"p50": round(quantile(xs, 0.5) * 1e3, 3), "p99": round(quantile(xs, 0.99) * 1e3, 3), "max": round(max(xs) * 1e3, 3)}


def burst(task, n):
    submit, refs = [], []
    for _ in range(n):
        submit.append(time.time())
        refs.append(task.remote())
    submitted = time.time()
    starts = ray.get(refs)
    done = time.time()
    lat = [s - t for s, t in zip(starts, submit)]
    span = max(starts) - submit[0]
    return {
        "tasks": n,
        "rate_per_s": round(n / span, 2),
        "span_s": round(span, 4),
        "submit_s": round(submitted - submit[0], 4),  # the driver's own time to submit them all
        "all_results_s": round(done - submit[0], 4),  # until the driver holds every result
        "latency_ms": latency_ms(lat),
    }


def paced(task, n, rate):
    submit, refs = [], []
    t0 = time.time()
    while len(refs) < n:
        # Every task whose due time (t0 + i / rate) has come, then sleep to the next one's.
        due = min(n, int((time.time() - t0) * rate) + 1)
        while len(refs) < due:
            submit.append(time.time())
            refs.append(task.remote())
        wait = t0 + len(refs) / rate - time.time()
        if wait > 0 and len(refs) < n:
            time.sleep(wait)
    starts = ray.get(refs)
    lat = [s - t for s, t in zip(starts, submit)]
    span = max(starts) - submit[0]
    return {
        "tasks": n,
        "target_rate_per_s": rate,
        "submit_rate_per_s": round((n - 1) / (submit[-1] - submit[0]), 2) if n > 1 else 0.0,
        "rate_per_s": round(n / span, 2),
        "span_s": round(span, 4),
        "latency_ms": latency_ms(lat),
        "steady_p50_ms": round(quantile(lat[n // 2:], 0.5) * 1e3, 3),
    }


def actors(n):
    cls = ray.remote(num_cpus=0)(Pinger)
    created, handles, refs = [], [], []
    for _ in range(n):
        created.append(time.time())
        a = cls.remote()
        handles.append(a)
        refs.append(a.ping.remote())
    pinged = ray.get(refs)
    done = time.time()
    span = done - created[0]
    for a in handles:
        ray.kill(a)
    return {
        "actors": n,
        "rate_per_s": round(n / span, 2),
        "span_s": round(span, 4),
        "latency_ms": latency_ms([p - c for p, c in zip(pinged, created)]),
    }


def main():
    spec = json.load(open(sys.argv[1]))
    # A bench that times out sends SIGTERM: shut Ray down rather than leave its processes behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.time()
    opts = {"_temp_dir": spec["temp_dir"]} if spec.get("temp_dir") else {}
    if spec.get("custom_resources"):
        opts["resources"] = spec["custom_resources"]
    ray.init(num_cpus=spec["num_cpus"], include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False, **opts)
    init_s = time.time() - began
    try:
        task = ray.remote(noop)  # Ray's default resources: num_cpus=1
        # Unmeasured: the workers started and warm, and Ray's code paths hot.
        for _ in range(3):
            ray.get([task.remote() for _ in range(100)])
        out = {
            "ray_version": ray.__version__,
            "num_cpus": spec["num_cpus"],
            "init_s": round(init_s, 3),
            "burst": burst(task, spec["tasks"]),
            "paced": paced(task, spec["tasks"], spec["rate_per_s"]),
            "actors": actors(spec["actors"]),
        }
        out["wall_s"] = round(time.time() - began, 3)
        with open(sys.argv[2], "w") as f:
            json.dump(out, f)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
