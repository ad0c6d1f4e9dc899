"""The Space under load: N clients x R requests against the real app (``python spaces_app/app.py``) in a subprocess.

Run (figures in docs/space.md)::

    OMP_NUM_THREADS=1 python tests/bench/space_concurrency.py             # 16 clients x 3 requests
    OMP_NUM_THREADS=1 python tests/bench/space_concurrency.py --smoke     # the CI size (4 x 3)

What it does, on 127.0.0.1, with a tiny VideoMAE given through STADYN_MODEL and a set of three 16-frame 64x64 clips:

1. baseline: one request alone; the server's peak RSS during it is the reference.
2. clients: ``--clients`` threads, each sending ``--requests`` requests one after the other, through
   Gradio's HTTP queue protocol (``/gradio_api/upload``, ``/queue/join``, ``/queue/data``). In every
   group of 4 clients, client 1 disconnects from its second request once the app reports pairs being
   made (a 256-pair request, so that it is still running), client 3 disconnects from its second request while
   it waits in the queue; the others wait for their answers (``--timeout`` each).
3. burst: ``QUEUE_MAX_SIZE + 8`` requests joined at once (more than the queue holds): the ones beyond
   the queue get the busy answer; the accepted ones disconnect at once (dropped from the queue or
   cancelled when running).

It checks, and lists as ``problems`` (empty when all is well): every answer is a valid report
(report.json with the requested pairs, finite numbers; the figure a PNG) downloaded after the
request's own output folder was removed; the only errors are Gradio's one-line "Queue is full" busy
answers; every request whose client left was never started or was cancelled (the server log has a
``job N: ...`` line for each start and end); every started job ended; no request output folder is left;
and the server's peak RSS under load over the baseline peak stays under ``--max-rss-ratio``.

Prints one JSON object (also written to ``--json``). Every wait is bounded (a maximum number of polls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "spaces_app" / "app.py"
QUEUE_MAX_SIZE = 16  # spaces_app/app.py QUEUE_MAX_SIZE (checked against the server's config below)
POLL_S = 0.1
DROP_PAIRS = 256  # a request long enough to be still running when its client leaves


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_inputs(folder: Path) -> tuple[Path, list[Path]]:
    """A tiny VideoMAE (2 blocks, 8 frames of 32x32) saved as a folder, and three 16-frame 64x64 mp4 clips (the
    Space's layer estimate takes a set of at least 3 videos)."""
    import torch

    from hf_stadyn.models import StadynVideoMAEForVideoClassification, tiny_videomae_config
    from hf_stadyn.video import write_video

    torch.manual_seed(0)
    model = StadynVideoMAEForVideoClassification(tiny_videomae_config(num_labels=4, num_hidden_layers=2)).eval()
    model.save_pretrained(folder / "model")
    clips = []
    for k in range(3):
        rng = np.random.default_rng(k)
        frames = np.repeat(rng.integers(0, 120, size=(1, 64, 64, 3), dtype=np.uint8), 16, axis=0)
        tex = rng.integers(120, 256, size=(20, 20, 3), dtype=np.uint8)
        for i in range(16):
            frames[i, 22:42, 2 * i : 2 * i + 20] = tex
        clips.append(write_video(folder / f"clip{k}.mp4", frames, fps=8))
    return folder / "model", clips


class Server:
    """``python spaces_app/app.py`` in a subprocess, with its log in a file and its RSS sampled."""

    def __init__(self, work: Path, model_dir: Path, start_polls: int = 1200) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output_dir = work / "outputs"
        self.cache_dir = work / "gradio-cache"
        self.log_path = work / "server.log"
        env = dict(
            os.environ,
            STADYN_MODEL=str(model_dir),
            STADYN_SPACE_OUTPUT_DIR=str(self.output_dir),
            GRADIO_TEMP_DIR=str(self.cache_dir),
            GRADIO_SERVER_PORT=str(self.port),
            GRADIO_SERVER_NAME="127.0.0.1",
            GRADIO_ANALYTICS_ENABLED="False",
            OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([sys.executable, str(APP)], env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.rss_peak = 0
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        for _ in range(start_polls):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                if httpx.get(self.url + "/gradio_api/info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            self.stop()
            raise RuntimeError(f"the app did not answer within {start_polls * 0.25:.0f} s; log: {self.log_path}")
        config = httpx.get(self.url + "/config", timeout=30).json()
        self.fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "analyze")
        self.api_prefix = config.get("api_prefix", "/gradio_api")

    def rss(self) -> int:
        """Resident set size of the server process, in bytes (psutil, else /proc)."""
        try:
            import psutil

            return int(psutil.Process(self.proc.pid).memory_info().rss)
        except ImportError:
            with open(f"/proc/{self.proc.pid}/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            return kb * 1024

    def start_sampling(self) -> None:
        """Record the peak RSS every 50 ms until :meth:`stop_sampling`."""
        self.rss_peak = self.rss()
        self._sampling.clear()

        def sample() -> None:
            while not self._sampling.wait(0.05):
                try:
                    self.rss_peak = max(self.rss_peak, self.rss())
                except Exception:  # the process ended (psutil.NoSuchProcess, or /proc gone)
                    return

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> int:
        self._sampling.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)
        return self.rss_peak

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def jobs(self) -> dict[str, int]:
        """Counts of the app's ``job N: started / finished / cancelled / refused / failed`` log lines."""
        text = self.log()
        return {
            k: len(re.findall(rf"job \d+: {k}\b", text))
            for k in ("started", "finished", "cancelled", "refused", "failed")
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


# -- one request, through Gradio's HTTP queue protocol -----------------------------------------------


def upload(server: Server, clips: Path | list[Path]) -> list[dict[str, Any]]:
    """Upload the clips of one set; returns their FileData dicts (the /analyze request's first input)."""
    out = []
    for clip in [clips] if isinstance(clips, Path) else clips:
        with open(clip, "rb") as f:
            r = httpx.post(
                f"{server.url}{server.api_prefix}/upload", files=[("files", (clip.name, f, "video/mp4"))], timeout=60
            )
        r.raise_for_status()
        out.append({"path": r.json()[0], "orig_name": clip.name, "meta": {"_type": "gradio.FileData"}})
    return out


def join(server: Server, video: list[dict[str, Any]], num_pairs: int, seed: int, session: str) -> tuple[int, str]:
    """POST queue/join; returns ``(status_code, event_id or the error detail)``."""
    body = {
        "data": [video, num_pairs, seed, "default", ""],  # the videos, pairs, seed, model choice, Hub id
        "fn_index": server.fn_index,
        "session_hash": session,
        "event_data": None,
        "trigger_id": None,
    }
    r = httpx.post(f"{server.url}{server.api_prefix}/queue/join", json=body, timeout=60)
    if r.status_code == 200:
        return 200, r.json()["event_id"]
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    return r.status_code, str(detail)


def listen(server: Server, session: str, drop: str | None, timeout_s: float) -> dict[str, Any]:
    """Read the session's event stream until the answer, or leave early (``drop``).

    ``drop="running"``: leave at the first status line "Analyzing: k of n pairs made" (the analysis is
    computing); ``drop="queued"``: leave at the first message (an "estimation" while it waits).

    Returns ``{"outcome": answered | error | dropped_running | dropped_queued | timed_out, ...}``.
    """
    msgs: list[str] = []
    deadline = time.monotonic() + timeout_s
    url = f"{server.url}{server.api_prefix}/queue/data"
    with httpx.stream("GET", url, params={"session_hash": session}, timeout=httpx.Timeout(30, read=30)) as r:
        if r.status_code != 200:
            return {"outcome": "error", "detail": f"queue/data HTTP {r.status_code}"}
        for line in r.iter_lines():  # bounded: the server sends a heartbeat at least every 15 s; deadline below
            if time.monotonic() > deadline:
                return {"outcome": "timed_out", "msgs": msgs}
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            kind = msg.get("msg")
            msgs.append(kind)
            if drop == "running" and kind == "process_generating" and "Analyzing:" in line:
                # the analysis is making pairs (the app's status line): leave while it computes
                return {"outcome": "dropped_running", "msgs": msgs}
            if drop == "queued" and kind in ("estimation", "process_starts"):
                # leaving on the first message: queued, unless it started at once (then it must be cancelled)
                return {"outcome": "dropped_queued" if kind == "estimation" else "dropped_running", "msgs": msgs}
            if kind == "process_completed":
                out = msg.get("output") or {}
                if msg.get("success"):
                    return {"outcome": "answered", "data": out.get("data"), "msgs": msgs}
                return {"outcome": "error", "detail": str(out.get("error")), "title": out.get("title"), "msgs": msgs}
            if kind == "unexpected_error":
                return {"outcome": "error", "detail": str(msg.get("message")), "msgs": msgs}
    return {"outcome": "error", "detail": "the stream ended without an answer", "msgs": msgs}


def request(
    server: Server, video: list[dict[str, Any]], num_pairs: int, seed: int, drop: str | None, timeout_s: float
) -> dict[str, Any]:
    session = uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    code, got = join(server, video, num_pairs, seed, session)
    if code != 200:
        outcome = "busy" if code == 503 else "error"
        return {
            "outcome": outcome,
            "status": code,
            "detail": got,
            "num_pairs": num_pairs,
            "seconds": time.monotonic() - t0,
        }
    res = listen(server, session, drop, timeout_s)
    res.update(num_pairs=num_pairs, seed=seed, seconds=time.monotonic() - t0)
    if res["outcome"] == "answered":
        res["check"] = check_answer(server, res)
    return res


def check_answer(server: Server, res: dict[str, Any]) -> str | None:
    """None when the answer is a valid report, else what is wrong (downloads report.json and the figure)."""
    data = res.get("data")
    if not (isinstance(data, list) and len(data) == 3):
        return f"answer is not (markdown, figure, report.json): {str(data)[:200]}"
    md, fig, js = data
    for f in (fig, js):
        if not isinstance(f, dict) or Path(str(f.get("path"))).is_relative_to(server.output_dir):
            return f"an answer file is not served from Gradio's cache: {f}"
    if not (isinstance(md, str) and "| layer |" in md):
        return "the markdown has no layer table"
    from hf_stadyn.report import BiasReport

    try:
        fig_bytes = httpx.get(fig["url"], timeout=60).content
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "report.json").write_bytes(httpx.get(js["url"], timeout=60).content)
            report = BiasReport.load(Path(d) / "report.json")
    except (httpx.HTTPError, ValueError, KeyError, TypeError, OSError) as e:
        return f"cannot download or load the answer's files: {type(e).__name__}: {e}"
    if fig_bytes[:8] != b"\x89PNG\r\n\x1a\n":
        return "the figure is not a PNG"
    if report.pair_settings.get("num_pairs") != res["num_pairs"]:
        return f"report.json has num_pairs={report.pair_settings.get('num_pairs')}, asked {res['num_pairs']}"
    shares = [v for lb in report.layers.values() for v in lb.share.values()]
    if not shares or not all(math.isfinite(v) for v in shares):
        return "report.json has no layers or non-finite shares"
    return None


def _run_dir_count(output_dir: Path) -> int:
    """Request output folders (``run-*``) under the app's output root."""
    return sum(1 for _ in output_dir.glob("run-*")) if output_dir.is_dir() else 0


def _threads(target: Any, n: int, join_s: float) -> None:
    """Run ``target(k)`` for k < n in n threads and join them (each join bounded by ``join_s``)."""
    threads = [threading.Thread(target=target, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=join_s)


def run_load(
    server: Server,
    clip: Path,
    clients: int = 16,
    requests: int = 3,
    *,
    timeout_s: float = 600.0,
    max_rss_ratio: float = 1.5,
    burst: bool = True,
) -> dict[str, Any]:
    """The three phases (module docstring) against a running ``server``; returns the figures and the problems."""
    problems: list[str] = []
    t_start = time.monotonic()
    jobs_before = server.jobs()
    video = upload(server, clip)
    idle_rss = server.rss()
    # 1. baseline: one request alone
    server.start_sampling()
    base = request(server, video, 16, 0, None, timeout_s)
    base_peak = server.stop_sampling()
    # 2. clients x requests, each client's requests one after the other
    results: list[list[dict[str, Any]]] = [[] for _ in range(clients)]

    def client(i: int) -> None:
        for j in range(requests):
            drop = ("running" if i % 4 == 1 else "queued" if i % 4 == 3 else None) if j == 1 else None
            pairs = DROP_PAIRS if drop == "running" else 16
            results[i].append(request(server, video, pairs, 100 * i + j, drop, timeout_s))

    server.start_sampling()
    t0 = time.monotonic()
    _threads(client, clients, timeout_s * requests + 60)
    load_s = time.monotonic() - t0
    flat = [r for rs in results for r in rs]
    if len(flat) != clients * requests:
        problems.append(f"{clients * requests - len(flat)} requests did not come back")
    # 3. burst: more joins at once than the queue holds (long requests, so few end meanwhile); then
    # every accepted one is left at its first message
    burst_res: list[dict[str, Any]] = []
    if burst:
        n = QUEUE_MAX_SIZE + 8
        sessions = [uuid.uuid4().hex[:12] for _ in range(n)]
        joined: list[tuple[int, str]] = [(0, "")] * n

        def join_one(k: int) -> None:
            joined[k] = join(server, video, DROP_PAIRS, 7, sessions[k])

        _threads(join_one, n, 120)
        burst_res = [{} for _ in range(n)]

        def leave_one(k: int) -> None:
            code, got = joined[k]
            if code == 200:
                burst_res[k] = listen(server, sessions[k], "queued", timeout_s)
            else:
                burst_res[k] = {"outcome": "busy" if code == 503 else "error", "status": code, "detail": got}

        _threads(leave_one, n, timeout_s + 60)
    load_peak = server.stop_sampling()
    # every started job ends (bounded wait), and no output folder is left
    for _ in range(int(120 / POLL_S)):
        jobs = server.jobs()
        running = jobs["started"] - jobs["finished"] - jobs["cancelled"] - jobs["failed"]
        if running == 0 and _run_dir_count(server.output_dir) == 0:
            break
        time.sleep(POLL_S)
    jobs = {k: v - jobs_before[k] for k, v in server.jobs().items()}
    rss_end = server.rss()

    everything = [base, *flat, *burst_res]
    counts: dict[str, int] = {}
    for r in everything:
        counts[r.get("outcome", "missing")] = counts.get(r.get("outcome", "missing"), 0) + 1
    for r in everything:
        outcome = r.get("outcome", "missing")
        if outcome == "answered" and r.get("check"):
            problems.append(f"invalid answer: {r['check']}")
        elif outcome == "busy" and not ("Queue is full" in r["detail"] and "\n" not in r["detail"].strip()):
            problems.append(f"a busy answer that is not the one-line 'Queue is full': {r['detail'][:300]!r}")
        elif outcome not in ("answered", "busy", "dropped_running", "dropped_queued"):
            problems.append(f"{outcome}: {str(r.get('detail'))[:300]} (messages {r.get('msgs')})")
    answered = counts.get("answered", 0)
    if jobs["finished"] != answered:
        problems.append(
            f"{jobs['finished']} jobs finished on the server for {answered} answers (work for clients that left)"
        )
    if jobs["cancelled"] < counts.get("dropped_running", 0):
        problems.append(
            f"{jobs['cancelled']} jobs cancelled for {counts.get('dropped_running', 0)} clients that left a running request"
        )
    if jobs["started"] != jobs["finished"] + jobs["cancelled"] + jobs["failed"]:
        problems.append(f"jobs still running at the end: {jobs}")
    if jobs["failed"] or jobs["refused"]:
        problems.append(f"jobs failed or refused on the server: {jobs}")
    leftover = _run_dir_count(server.output_dir)
    if leftover:
        problems.append(f"{leftover} request output folders left")
    ratio = load_peak / max(base_peak, 1)
    if ratio > max_rss_ratio:
        problems.append(f"peak RSS under load is {ratio:.2f}x the single-request peak (limit {max_rss_ratio})")
    if "Traceback" in server.log():
        problems.append(f"the server log holds a traceback ({server.log_path})")
    seconds = [r["seconds"] for r in flat if r.get("outcome") == "answered"]
    return {
        "clients": clients,
        "requests_per_client": requests,
        "outcomes": counts,
        "server_jobs": jobs,
        "load_seconds": round(load_s, 1),
        "answer_seconds_median": round(float(np.median(seconds)), 2) if seconds else None,
        "answer_seconds_max": round(max(seconds), 2) if seconds else None,
        "rss_mb": {
            "idle": round(idle_rss / 2**20),
            "single_request_peak": round(base_peak / 2**20),
            "load_peak": round(load_peak / 2**20),
            "end": round(rss_end / 2**20),
        },
        "rss_ratio_load_vs_single": round(ratio, 3),
        "output_folders_left": leftover,
        "gradio_cache_files": sum(1 for p in server.cache_dir.rglob("*") if p.is_file()),
        "seconds": round(time.monotonic() - t_start, 1),
        "problems": problems,
    }


def run_bench(clients: int = 16, requests: int = 3, rounds: int = 1, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_load` ``rounds`` times on one fresh server (a tiny model, a 16-frame clip) in a temporary folder.

    Returns the first round's figures; with ``rounds > 1`` also ``"rounds"`` (every round's figures) and
    ``"rss_growth_last_vs_first"`` (peak RSS under load, last round over first: ~1 when memory does not grow
    with the number of requests served). Problems of every round are listed in ``"problems"``.
    """
    with tempfile.TemporaryDirectory(prefix="stadyn-space-bench-") as d:
        model_dir, clip = make_inputs(Path(d))
        server = Server(Path(d), model_dir)
        try:
            runs = [run_load(server, clip, clients, requests, **kwargs) for _ in range(rounds)]
        finally:
            server.stop()
    figures = dict(runs[0])
    if rounds > 1:
        figures["rounds"] = runs
        figures["rss_growth_last_vs_first"] = round(runs[-1]["rss_mb"]["load_peak"] / runs[0]["rss_mb"]["load_peak"], 3)
        figures["problems"] = [f"round {k + 1}: {p}" for k, r in enumerate(runs) for p in r["problems"]]
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="the CI size: 4 clients x 3 requests")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the load on the same server (memory growth)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds a client waits for one answer")
    ap.add_argument("--max-rss-ratio", type=float, default=1.5)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    clients = 4 if args.smoke else args.clients
    figures = run_bench(clients, args.requests, args.rounds, timeout_s=args.timeout, max_rss_ratio=args.max_rss_ratio)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
