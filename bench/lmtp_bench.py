#!/usr/bin/python3
"""LMTP delivery benchmark: mailark side by side with Dovecot 2.3.

Generates a deterministic corpus (bench/corpus.py), then for every connection count
(default 1, 4, 16) delivers the whole corpus over LMTP into a fresh mailark data directory
and into a fresh Dovecot instance, measures messages/s, MB/s, peak memory and CPU, checks
that each server stored every message, prints a table and writes
bench/results/lmtp-<date>.json.

    /usr/bin/python3 bench/lmtp_bench.py --mailark build/mailark
    /usr/bin/python3 bench/lmtp_bench.py --mailark build/mailark --count 200 --conns 1,16

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus  # noqa: E402
import lmtp_client  # noqa: E402
import servers  # noqa: E402
from servers import DISTURBED, log, own_cpu  # noqa: E402

DOMAIN = "bench.test"


def parse_list(s: str) -> List[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def recipients_for(i: int, n: int, users: List[str]) -> List[str]:
    """Recipient k of message i: users spread round-robin, n distinct users per message."""
    step = max(1, len(users) // n)
    return [users[(i + k * step) % len(users)] for k in range(n)]


def percentile(values: List[float], p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


# Shared with imap_bench.py; they live in servers.py.
cpu_model = servers.cpu_model
fs_type = servers.fs_type
mailark_version = servers.mailark_version
snapshot_binary = servers.snapshot_binary
sha256_file = servers.sha256_file




def run_one(server, jobs: List[lmtp_client.Job], conns: int, expected_items: int,
            expected_bytes: int, args) -> Dict:
    """One server, one connection count, fresh data directory. Returns the result record."""
    rec: Dict = {"server": server.name, "connections": conns, "ok": False, "errors": []}
    try:
        t = time.monotonic()
        server.setup()
        server.start()
        rec["setup_s"] = round(time.monotonic() - t, 2)
        # Start from a quiet disk (nothing from setup or the previous run still in flight)
        # and, as far as possible, from idle CPUs: on a shared machine other work skews
        # everything, so wait a little for it and record what remains.
        os.sync()
        time.sleep(args.settle)
        ours = lambda: own_cpu() + servers.tree_cpu_seconds(server.pid)
        waited, load = servers.wait_for_quiet(ours, args.quiet_wait)
        rec["waited_for_quiet_s"] = round(waited, 1)
        rec["other_load_before"] = round(load, 2)
        cpu0 = servers.tree_cpu_seconds(server.pid)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        busy0, steal0 = servers.system_busy_seconds()
        kthreads0 = servers.kernel_threads_cpu_seconds()
        sampler = servers.TreeSampler(server.pid, args.sample_interval)
        res = lmtp_client.run("127.0.0.1", server.port, jobs, conns, on_start=sampler.start)
        sampler.stop()
        cpu1 = servers.tree_cpu_seconds(server.pid)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        busy1, steal1 = servers.system_busy_seconds()
        kthreads1 = servers.kernel_threads_cpu_seconds()
        server.before_stop()
        # Count what the server stored. Dovecot is asked while running (doveadm needs its
        # auth socket); mailark after it stopped. A crash at shutdown is an error of its own
        # but does not hide the figures, and whatever was acknowledged must still be there.
        stored: Optional[Dict] = None
        if server.name == "dovecot":
            try:
                stored = server.stored_live()
            except servers.BenchError as e:
                rec["errors"].append("counting stored messages: %s" % e)
        try:
            server.stop()
        except servers.BenchError as e:
            rec["errors"].append("stop: %s" % e)
        if server.name == "mailark":
            try:
                stored = server.stored()
            except servers.BenchError as e:
                rec["errors"].append("counting stored messages: %s" % e)

        el = res.elapsed_s
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        # CPU time used by neither the server, nor this client, nor kernel threads while the
        # clock ran: other processes on the machine.
        foreign = max(0.0, (busy1 - busy0) - (kthreads1 - kthreads0) - (cpu1 - cpu0)
                      - client_cpu)
        disturbed = foreign > max(0.2, DISTURBED * el * (os.cpu_count() or 1))
        rec.update({
            "elapsed_s": round(el, 3),
            "messages_ok": res.transactions_ok,
            "deliveries_ok": res.deliveries_ok,
            "bytes_ok": res.bytes_ok,
            "msg_per_s": round(res.transactions_ok / el, 2) if el else 0,
            "deliveries_per_s": round(res.deliveries_ok / el, 2) if el else 0,
            "mb_per_s": round(res.bytes_ok / el / 1e6, 2) if el else 0,
            "latency_ms": {
                "p50": round(percentile(res.latencies_s, 0.50) * 1e3, 2),
                "p90": round(percentile(res.latencies_s, 0.90) * 1e3, 2),
                "p99": round(percentile(res.latencies_s, 0.99) * 1e3, 2),
                "max": round(max(res.latencies_s, default=0) * 1e3, 2),
                "mean": round(statistics.fmean(res.latencies_s) * 1e3, 2)
                if res.latencies_s else 0,
            },
            "peak_rss_bytes": sampler.peak_rss,
            "peak_pss_bytes": sampler.peak_pss,
            "vmhwm_main_bytes": server.hwm,
            "vmhwm_sum_at_end_bytes": sampler.hwm_sum_at_end,
            "peak_processes": sampler.peak_procs,
            "memory_samples": sampler.samples,
            "server_cpu_s": round(cpu1 - cpu0, 2),
            "client_cpu_s": round(client_cpu, 2),
            "server_cpu_ms_per_msg": round((cpu1 - cpu0) * 1e3 / max(1, res.transactions_ok), 3),
            "foreign_cpu_s": round(foreign, 2),
            "kernel_threads_cpu_s": round(kthreads1 - kthreads0, 2),
            "steal_cpu_s": round(steal1 - steal0, 2),
            "disturbed": disturbed,
            "stored": {k: v for k, v in (stored or {}).items() if k != "raw"},
            "disk_bytes": server.disk_usage(),
            "failures": res.failures[:20],
            "failure_count": len(res.failures),
            "connection_errors": res.connection_errors[:20],
        })
        ok = not rec["errors"]
        if res.failures or res.connection_errors:
            ok = False
            rec["errors"].append("%d failed transactions, %d connection errors" % (
                len(res.failures), len(res.connection_errors)))
        got = (stored or {}).get("messages", -1)
        if got != expected_items:
            ok = False
            rec["errors"].append("stored %d messages, expected %d" % (got, expected_items))
        if server.name == "mailark" and stored and stored.get("bytes", 0) < expected_bytes:
            ok = False
            rec["errors"].append("stored %d bytes, expected at least %d" % (
                stored["bytes"], expected_bytes))
        rec["ok"] = ok
    except (servers.BenchError, lmtp_client.LmtpError, OSError) as e:
        rec["errors"].append("%s: %s" % (type(e).__name__, e))
    finally:
        try:
            server.stop()
        except servers.BenchError as e:
            rec["errors"].append(str(e))
        rec["log_problems"] = server.problems()
        if rec["errors"]:
            rec["log_tail"] = server.log_tail(40)
    return rec


def fmt_mem(b: int) -> str:
    return "%.0f MB" % (b / 2**20) if b else "-"


def representative(results: List[Dict], server: str, conns: int, rcpts: int) -> Optional[Dict]:
    """The run whose msg/s is the median over the repeats of (server, conns, rcpts), with the
    min/max msg/s and whether every repeat verified. None when that combination never ran."""
    runs = [r for r in results
            if r["server"] == server and r["connections"] == conns and r["rcpts"] == rcpts]
    if not runs:
        return None
    measured = sorted((r for r in runs if "msg_per_s" in r), key=lambda r: r["msg_per_s"])
    if not measured:
        return runs[0]
    rep = dict(measured[(len(measured) - 1) // 2])
    rep["repeats"] = len(runs)
    rep["msg_per_s_min"] = measured[0]["msg_per_s"]
    rep["msg_per_s_max"] = measured[-1]["msg_per_s"]
    rep["ok"] = all(r["ok"] for r in runs)
    return rep


def summary(results: List[Dict], conns_list: List[int], rcpt_passes: List[int]) -> List[Dict]:
    out = []
    for n in rcpt_passes:
        for c in conns_list:
            row: Dict = {"rcpts": n, "connections": c}
            for s in ("mailark", "dovecot"):
                r = representative(results, s, c, n)
                if r and "msg_per_s" in r:
                    row[s] = {k: r[k] for k in (
                        "msg_per_s", "msg_per_s_min", "msg_per_s_max", "mb_per_s",
                        "peak_rss_bytes", "peak_pss_bytes", "server_cpu_s", "repeats", "ok",
                        "disturbed")}
            if "mailark" in row and "dovecot" in row and row["dovecot"]["msg_per_s"]:
                row["ratio"] = round(row["mailark"]["msg_per_s"] / row["dovecot"]["msg_per_s"], 3)
            out.append(row)
    return out


def print_table(results: List[Dict], conns_list: List[int], rcpts: int):
    head = ("conns | mailark msg/s |   MB/s | peak RSS || dovecot msg/s |   MB/s | peak RSS "
            "|| ratio (mailark/dovecot msg/s)")
    log(head)
    log("-" * len(head))
    for c in conns_list:
        cells = []
        rates = []
        for s in ("mailark", "dovecot"):
            r = representative(results, s, c, rcpts)
            if r is None:
                cells.append("%13s | %6s | %8s" % ("skipped", "", ""))
                rates.append(None)
            elif "msg_per_s" not in r:
                cells.append("%13s | %6s | %8s" % ("FAILED", "", ""))
                rates.append(None)
            else:
                mark = "" if r["ok"] else " !"
                if r.get("disturbed"):
                    mark += " ~"
                cells.append("%13s | %6.1f | %8s" % ("%.1f%s" % (r["msg_per_s"], mark),
                                                      r["mb_per_s"], fmt_mem(r["peak_rss_bytes"])))
                rates.append(r["msg_per_s"])
        ratio = "%.2fx" % (rates[0] / rates[1]) if rates[0] and rates[1] else "-"
        log("%5d | %s || %s || %s" % (c, cells[0], cells[1], ratio))
    spreads, repeats = [], 1
    for c in conns_list:
        for s in ("mailark", "dovecot"):
            r = representative(results, s, c, rcpts)
            if r and r.get("repeats", 1) > 1 and "msg_per_s_min" in r:
                repeats = max(repeats, r["repeats"])
                spreads.append("%s/%d %.0f-%.0f" % (s, c, r["msg_per_s_min"], r["msg_per_s_max"]))
    if spreads:
        log("(median run of %d repeats; msg/s min-max: %s)" % (repeats, ", ".join(spreads)))


def print_details(results: List[Dict], rcpts: int):
    log()
    log("details (rcpts/msg = %d): server CPU = CPU seconds of the server's whole process tree "
        "during the run; client CPU = this Python client; PSS counts shared pages once" % rcpts)
    log("%-8s %5s | %7s | %7s | %8s | %9s | %9s | %9s | %7s | %7s | %5s | %8s | %8s" % (
        "server", "conns", "time s", "msg/s", "deliv/s", "srv CPU s", "cli CPU s", "other CPU",
        "p50 ms", "p99 ms", "procs", "peak PSS", "disk"))
    for r in sorted((r for r in results if r["rcpts"] == rcpts and "msg_per_s" in r),
                    key=lambda r: (r["connections"], r["server"] != "mailark", r["repeat"])):
        log("%-8s %5d | %7.1f | %7.1f | %8.1f | %9.1f | %9.1f | %9.1f | %7.1f | %7.1f | %5d | "
            "%8s | %8s" % (
            r["server"], r["connections"], r["elapsed_s"], r["msg_per_s"], r["deliveries_per_s"],
            r["server_cpu_s"], r["client_cpu_s"], r["foreign_cpu_s"], r["latency_ms"]["p50"],
            r["latency_ms"]["p99"], r["peak_processes"], fmt_mem(r["peak_pss_bytes"]),
            fmt_mem(r["disk_bytes"])))


def main() -> int:
    ap = argparse.ArgumentParser(description="LMTP delivery benchmark: mailark vs Dovecot")
    ap.add_argument("--mailark", default=os.path.join(HERE, "..", "build", "mailark"),
                    help="mailark binary (default build/mailark)")
    ap.add_argument("--count", type=int, default=2000, help="messages in the corpus")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed")
    ap.add_argument("--max-attachment", default="8M",
                    help="largest attachment before base64, e.g. 8M (default)")
    ap.add_argument("--conns", default="1,4,16", help="connection counts (default 1,4,16)")
    ap.add_argument("--rcpts", default="1,3",
                    help="one pass per value: recipients per message (default 1,3)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every (server, connections, recipients) N times, interleaved; "
                         "the table shows the median run (default 1)")
    ap.add_argument("--users", type=int, default=50, help="mailboxes per server (default 50)")
    ap.add_argument("--dovecot-format", choices=["sdbox", "mdbox"], default="sdbox",
                    help="Dovecot mail_location format (default sdbox)")
    ap.add_argument("--servers", default="mailark,dovecot",
                    help="which servers to run (default mailark,dovecot)")
    ap.add_argument("--workdir", default=None,
                    help="where the temporary data directories go (default $TMPDIR or /tmp); "
                         "must be a real disk, not tmpfs")
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"),
                    help="where lmtp-<date>.json goes (default bench/results)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait after sync before each run (default 1)")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="before each run, wait up to this many seconds for other processes "
                         "to leave the CPUs idle (default 30)")
    ap.add_argument("--sample-interval", type=float, default=0.1,
                    help="memory sampling period in seconds (default 0.1)")
    args = ap.parse_args()

    which = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.users < max(parse_list(args.rcpts)):
        ap.error("--users must be at least the largest --rcpts value")

    workdir = args.workdir or tempfile.gettempdir()
    bin_dir = tempfile.mkdtemp(prefix="mailark-bench-bin-", dir=workdir)
    try:
        return bench(args, which, workdir, bin_dir)
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)


def bench(args, which: List[str], workdir: str, bin_dir: str) -> int:
    conns_list = parse_list(args.conns)
    rcpt_passes = parse_list(args.rcpts)
    binary = None
    if "mailark" in which:
        args.mailark = os.path.abspath(args.mailark)
        binary = snapshot_binary(args.mailark, bin_dir)
        if not binary:
            log("error: mailark binary %s not found or not runnable (build it with "
                "`make build`)" % args.mailark)
            return 2
    if "dovecot" in which:
        missing = servers.Dovecot.available()
        if missing:
            log("error: " + missing)
            return 2

    if fs_type(workdir) in ("tmpfs", "ramfs"):
        log("warning: %s is %s: fsync is free there and the numbers mean little"
            % (workdir, fs_type(workdir)))

    started = datetime.datetime.now()
    log("LMTP delivery benchmark  %s" % started.strftime("%Y-%m-%d %H:%M:%S"))
    log("machine: %d CPUs (%s), %.1f GB RAM, kernel %s, data on %s (%s)" % (
        os.cpu_count(), cpu_model(), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9,
        platform.release(), workdir, fs_type(workdir)))
    mversion = mailark_version(binary) if binary else None
    msha = sha256_file(binary)[:16] if binary else None
    dversion = servers.Dovecot.version() if "dovecot" in which else None
    if mversion:
        log("mailark: %s (%s, sha256 %s..., copied for the whole run)" % (
            mversion, args.mailark, msha))
    if dversion:
        log("dovecot: %s, mail_location=%s, mail_fsync=optimized (default)" % (
            dversion, args.dovecot_format))
    log("note: the load generator is a Python client on the same %d CPUs as the server; its "
        "CPU use is reported per run (client CPU s)." % os.cpu_count())

    # Corpus -------------------------------------------------------------------------------
    t = time.monotonic()
    max_att = corpus.parse_size(args.max_attachment)
    messages = list(corpus.generate(args.count, args.seed, max_att))
    log("corpus: seed %d, max attachment %s: %s (%.1f s)" % (
        args.seed, args.max_attachment, corpus.summarize(messages), time.monotonic() - t))
    corpus_bytes = sum(len(m.data) for m in messages)
    corpus_info = {"count": len(messages), "seed": args.seed, "max_attachment": max_att,
                   "bytes": corpus_bytes, "summary": corpus.summarize(messages)}

    users = ["user%d@%s" % (i, DOMAIN) for i in range(args.users)]

    # Runs ----------------------------------------------------------------------------------
    results: List[Dict] = []
    jobs: List[lmtp_client.Job] = []
    for n in rcpt_passes:
        # Pre-encoded before any clock starts: dot-stuffed payloads and envelopes.
        jobs.clear()
        jobs = [lmtp_client.make_job(m.index, m.sender, recipients_for(m.index, n, users), m.data)
                for m in messages]
        for c in conns_list:
            for rep in range(args.repeat):
                for name in which:
                    root = tempfile.mkdtemp(prefix="mailark-bench-%s-%dc-%dr-" % (name, c, n),
                                            dir=workdir)
                    if name == "mailark":
                        srv = servers.Mailark(binary, root, DOMAIN, users)
                    else:
                        srv = servers.Dovecot(root, DOMAIN, users, args.dovecot_format)
                    log("run: %-7s %2d connection(s), %d recipient(s)/message%s ..." % (
                        name, c, n, " (repeat %d/%d)" % (rep + 1, args.repeat)
                        if args.repeat > 1 else ""))
                    rec = run_one(srv, jobs, c, len(jobs) * n, corpus_bytes * n, args)
                    rec["rcpts"] = n
                    rec["repeat"] = rep + 1
                    rec["data_dir"] = root if args.keep else None
                    results.append(rec)
                    if "msg_per_s" in rec:
                        log("     %.1f msg/s, %.1f MB/s, %.1f s, peak RSS %s, server CPU %.1f s, "
                            "client CPU %.1f s, other CPU %.1f s, stored %s%s" % (
                                rec["msg_per_s"], rec["mb_per_s"], rec["elapsed_s"],
                                fmt_mem(rec["peak_rss_bytes"]), rec["server_cpu_s"],
                                rec["client_cpu_s"], rec["foreign_cpu_s"],
                                rec["stored"].get("messages"),
                                "" if rec["ok"] else "  <-- " + "; ".join(rec["errors"])))
                        if rec["disturbed"]:
                            log("     warning: other processes used %.1f CPU s during this run; "
                                "its figures are skewed (marked ~)" % rec["foreign_cpu_s"])
                    else:
                        log("     FAILED: " + "; ".join(rec["errors"]))
                    for p in rec.get("failures", [])[:3]:
                        log("     failure: " + p)
                    for p in rec.get("log_problems", [])[:5]:
                        log("     log: " + p)
                    for p in rec.get("log_tail", [])[-3:]:
                        log("     log tail: " + p)
                    if not args.keep:
                        shutil.rmtree(root, ignore_errors=True)

    # Report --------------------------------------------------------------------------------
    log()
    for n in rcpt_passes:
        log("== %d recipient(s) per message, %d messages, %.1f MB ==" % (
            n, args.count, corpus_bytes / 1e6))
        print_table(results, conns_list, n)
        print_details(results, n)
        log()
    log("msg/s = messages with every recipient answered 250 / wall time; MB/s = their size "
        "(10^6 bytes, before dot-stuffing) / wall time; peak RSS = highest sampled sum of RSS "
        "over the server's process tree; '!' = verification failed; '~' = other processes "
        "used over %d%% of the CPUs during the run." % (DISTURBED * 100))
    log("The client shares the %d CPUs with the server (client CPU s above)." % os.cpu_count())

    target = None
    big = 16  # the target: mailark >= 2x Dovecot at 16 connections, 1 recipient
    m = representative(results, "mailark", big, 1)
    d = representative(results, "dovecot", big, 1)
    if m and d and m.get("msg_per_s") and d.get("msg_per_s"):
        ratio = m["msg_per_s"] / d["msg_per_s"]
        target = {"connections": big, "ratio": round(ratio, 3), "met": ratio >= 2.0}
        log("target (mailark >= 2x Dovecot msg/s at %d connections): %s (%.2fx)" % (
            big, "met" if ratio >= 2.0 else "NOT met", ratio))

    all_ok = all(r["ok"] for r in results)
    disturbed = [r for r in results if r.get("disturbed")]
    if disturbed:
        log("warning: %d run(s) shared the CPUs with other work (marked ~); rerun on an idle "
            "machine for figures you want to quote" % len(disturbed))
    if not all_ok:
        log("VERIFICATION FAILED for: " + ", ".join(
            "%s/%dc/%dr (%s)" % (r["server"], r["connections"], r["rcpts"], "; ".join(r["errors"]))
            for r in results if not r["ok"]))

    os.makedirs(args.results_dir, exist_ok=True)
    out = os.path.join(args.results_dir, "lmtp-%s.json" % started.strftime("%Y%m%d-%H%M%S"))
    with open(out, "w") as f:
        json.dump({
            "benchmark": "lmtp-delivery",
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round((datetime.datetime.now() - started).total_seconds(), 1),
            "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
                        "workdir": workdir, "workdir_fs": fs_type(workdir),
                        "python": platform.python_version(),
                        "bench_max_rss_bytes":
                            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024},
            "mailark": {"binary": args.mailark, "version": mversion,
                        "sha256_prefix": msha} if binary else None,
            "dovecot": {"version": dversion, "mail_location": args.dovecot_format,
                        "mail_fsync": "optimized"} if dversion else None,
            "corpus": corpus_info,
            "users": args.users,
            "connections": conns_list,
            "rcpt_passes": rcpt_passes,
            "repeat": args.repeat,
            "summary": summary(results, conns_list, rcpt_passes),
            "target_16": target,
            "all_verified": all_ok,
            "disturbed_runs": len(disturbed),
            "results": results,
        }, f, indent=2)
    log("results: %s" % out)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
