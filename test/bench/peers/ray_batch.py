"""Ray's side of the packing bench (test/bench/packing.ts): the same jobs, as Ray runs them.

    python ray_batch.py IN.json OUT.json

IN.json: {"num_cpus": 2, "poll_s": 0.2, "temp_dir": DIR, "jobs": [{"id": ..., "steps": [{"name": "encode",
"argv": ["/usr/bin/ffmpeg", ...]}, ...]}]}. Each job's steps are the agent's own ffmpeg command
lines for it (compiled by node-agent/ffmpeg/args.ts for a one-core grant), run in order without
a shell and without pinning, as one Ray task with Ray's default `num_cpus=1`, on a local Ray of
`num_cpus` CPUs. Every task is submitted at once; the driver notes when it sees each result.

OUT.json: per task its submit, start, end and seen times (seconds from the first submission)
and each step's times, exit code and `-benchmark` maxrss; the makespan and mean completion
(submission to the driver seeing the result); the peak RSS of the ffmpeg processes, alone and
all at once (polled every `poll_s`); and the CPU seconds Ray's own processes (GCS, raylet,
workers, the rest) used during the batch, ffmpeg's excluded, beside the driver's (which
includes this poller).
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

# ray before psutil: ray puts its own psutil on the path, and a psutil imported first breaks it.
import ray
import psutil

MAXRSS = re.compile(r"bench: maxrss=(\d+)kB")
CPU = re.compile(r"bench: utime=([\d.]+)s stime=([\d.]+)s")


def worker_pid():
    return os.getpid()


def run_job(job):
    """One job's steps in order; stops at the first that fails."""
    t = {"id": job["id"], "start": time.time(), "steps": [], "pid": os.getpid()}
    for step in job["steps"]:
        began = time.time()
        p = subprocess.run(step["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.decode("utf-8", "replace")
        m = MAXRSS.findall(err)
        # ffmpeg's own CPU time (-benchmark): the work the batch needs, whoever schedules it.
        c = CPU.findall(err)
        t["steps"].append({
            "name": step["name"], "start": began, "end": time.time(), "rc": p.returncode,
            "maxrss_gb": int(m[-1]) / 1024 ** 2 if m else None,
            "cpu_s": float(c[-1][0]) + float(c[-1][1]) if c else None,
            **({"error": err.strip().splitlines()[-3:]} if p.returncode else {}),
        })
        if p.returncode:
            break
    t["end"] = time.time()
    return t


class Poller(threading.Thread):
    """Polls this driver's process tree: ffmpeg RSS, and every other process's own CPU time."""

    def __init__(self, every_s):
        super().__init__(daemon=True)
        self.every_s = every_s
        self.stopping = threading.Event()
        self.me = psutil.Process()
        self.cpu = {}  # pid -> (role, cpu seconds at the last poll)
        self.base = {}  # pid -> cpu seconds when the batch began (absent: started during it)
        self.rss_peak = 0.0  # one ffmpeg
        self.rss_peak_sum = 0.0  # all ffmpeg at one moment
        self.polls = 0
        self.names = {}  # role -> the process names seen in it

    def role(self, p):
        name = p.name()
        if name == "ffmpeg":
            return "ffmpeg"
        if "gcs_server" in name:
            return "gcs_server"
        if "raylet" in name:
            return "raylet"
        try:
            cmd = " ".join(p.cmdline()[:3])
        except psutil.Error:
            cmd = ""
        # A worker's title is ray::IDLE or ray::<the task it runs>; Ray's agents are ray::DashboardAgent, ray::RuntimeEnvAgent.
        title = name if name.startswith("ray::") else cmd.split(" ")[0] if cmd.startswith("ray::") else ""
        if "default_worker.py" in cmd or (title and not title.endswith("Agent")):
            return "workers"
        return "other"

    def poll(self):
        total = 0.0
        for p in self.me.children(recursive=True):
            try:
                role = self.role(p)
                self.names.setdefault(role, set()).add(p.name())
                if role == "ffmpeg":
                    rss = p.memory_info().rss / 1024 ** 3
                    self.rss_peak = max(self.rss_peak, rss)
                    total += rss
                    continue
                c = p.cpu_times()
                self.cpu[p.pid] = (role, c.user + c.system)
            except psutil.Error:
                continue
        self.rss_peak_sum = max(self.rss_peak_sum, total)
        self.polls += 1

    def begin(self):
        self.poll()
        self.base = {pid: s for pid, (_, s) in self.cpu.items()}
        c = self.me.cpu_times()
        self.driver0 = c.user + c.system
        self.start()

    def run(self):
        while not self.stopping.wait(self.every_s):
            self.poll()

    def end(self):
        self.stopping.set()
        self.join()
        self.poll()
        c = self.me.cpu_times()
        by = {}
        for pid, (role, s) in self.cpu.items():
            by[role] = by.get(role, 0.0) + s - self.base.get(pid, 0.0)
        return by, c.user + c.system - self.driver0


def main():
    spec = json.load(open(sys.argv[1]))
    # A bench that times out sends SIGTERM: shut Ray down rather than leave its processes behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Its sessions (logs, sockets) in the bench's own directory, which the bench removes afterwards.
    temp = {"_temp_dir": spec["temp_dir"]} if spec.get("temp_dir") else {}
    ray.init(num_cpus=spec["num_cpus"], include_dashboard=False, logging_level="ERROR", log_to_driver=False, **temp)
    try:
        task = ray.remote(run_job)  # Ray's default resources: num_cpus=1

        # Unmeasured: a worker per CPU started and warm, as Prescient's agent is before its batch.
        ray.get([ray.remote(worker_pid).remote() for _ in range(spec["num_cpus"])])
        poller = Poller(spec.get("poll_s", 0.2))
        poller.begin()
        t0 = time.time()
        refs, submitted = {}, {}
        for job in spec["jobs"]:
            submitted[job["id"]] = time.time()
            refs[task.remote(job)] = job["id"]
        seen, results = {}, {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for r in done:
                seen[refs[r]] = time.time()
                results[refs[r]] = ray.get(r)
        t_end = time.time()
        cpu, driver = poller.end()

        rel = lambda t: round(t - t0, 4)
        tasks = []
        for job in spec["jobs"]:
            r = results[job["id"]]
            tasks.append({
                "id": job["id"], "submit": rel(submitted[job["id"]]), "start": rel(r["start"]), "end": rel(r["end"]), "seen": rel(seen[job["id"]]),
                "worker_pid": r["pid"],
                "ok": all(s["rc"] == 0 for s in r["steps"]) and len(r["steps"]) == len(job["steps"]),
                "steps": [{**s, "start": rel(s["start"]), "end": rel(s["end"])} for s in r["steps"]],
            })
        completions = [t["seen"] - t["submit"] for t in tasks]
        wall = t_end - t0
        out = {
            "ray_version": ray.__version__,
            "num_cpus": spec["num_cpus"],
            "makespan_s": round(max(t["seen"] for t in tasks), 4),
            "completion_mean_s": round(sum(completions) / len(completions), 4),
            "tasks": tasks,
            "ffmpeg_peak_rss_gb": poller.rss_peak,
            "ffmpeg_peak_rss_sum_gb": poller.rss_peak_sum,
            "node_memory_gb": psutil.virtual_memory().total / 1024 ** 3,
            "wall_s": round(wall, 4),
            "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
            "driver_cpu_s": round(driver, 3),
            "polls": poller.polls,
            "processes": {k: sorted(v) for k, v in poller.names.items()},
        }
        with open(sys.argv[2], "w") as f:
            json.dump(out, f)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
