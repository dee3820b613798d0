"""A real Prometheus (Debian's package) scrapes shopwatch's /metrics; its API must show the
target up with no scrape error and the shopwatch series. promtool lints the exposition.

usage: prometheus_check.py --target HOST:PORT
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    args = ap.parse_args()
    exe = shutil.which("prometheus")
    if not exe:
        sys.exit("prometheus not found: apt-get install prometheus")
    work = tempfile.mkdtemp(prefix="shopwatch-prom-")
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: shopwatch
    static_configs:
      - targets: ['{args.target}']
""")
    port = free_port()
    proc = subprocess.Popen([exe, f"--config.file={cfg}", f"--storage.tsdb.path={work}/data",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
    api = f"http://127.0.0.1:{port}/api/v1"
    summary = {}
    try:
        deadline = time.time() + 60
        target = None
        while time.time() < deadline:
            try:
                targets = get(f"{api}/targets")["data"]["activeTargets"]
                target = next((t for t in targets if t["labels"].get("job") == "shopwatch"), None)
                if target and target["health"] == "up" and target["lastScrape"] != "0001-01-01T00:00:00Z":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        if not target or target["health"] != "up" or target["lastError"]:
            sys.exit(f"target not up: {json.dumps(target)}")
        summary["target"] = {"health": target["health"], "lastError": target["lastError"], "scrapeUrl": target["scrapeUrl"]}
        time.sleep(2.5)  # a few more scrapes, so rates and counters have points

        def query(q):
            r = get(f"{api}/query?" + urllib.parse.urlencode({"query": q}))
            assert r["status"] == "success", r
            return r["data"]["result"]

        needed = ["up", "shopwatch_build_info", "shopwatch_events_consumed_total", "shopwatch_rows_committed_total",
                  "shopwatch_commit_duration_seconds_bucket", "shopwatch_last_commit_timestamp_seconds",
                  "shopwatch_consumer_lag_records", "shopwatch_pipeline_up", "shopwatch_ws_clients",
                  "shopwatch_flight_query_duration_seconds_bucket", "shopwatch_kpi_refreshes_total",
                  "process_resident_memory_bytes"]
        for name in needed:
            result = query(f'{name}{{job="shopwatch"}}')
            if not result:
                sys.exit(f"Prometheus has no series {name}")
            summary[name] = len(result)
        if float(query('up{job="shopwatch"}')[0]["value"][1]) != 1.0:
            sys.exit("up != 1")
        if float(query('sum(shopwatch_rows_committed_total{job="shopwatch"})')[0]["value"][1]) <= 0:
            sys.exit("no committed rows seen by Prometheus")
        failed = query('sum(prometheus_target_scrapes_exceeded_sample_limit_total) + sum(prometheus_target_scrapes_sample_duplicate_timestamp_total) + sum(prometheus_target_scrapes_sample_out_of_bounds_total)')
        summary["scrape sample errors"] = float(failed[0]["value"][1]) if failed else 0.0
        if summary["scrape sample errors"]:
            sys.exit(f"scrape errors: {summary}")
        # Every expression the Grafana dashboard plots runs on this Prometheus (the instance
        # variable set to all), and the ones about the pipeline's core return series.
        dash = json.load(open(os.path.join(HERE, "..", "..", "..", "deploy", "grafana", "dashboards", "shopwatch.json")))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        with_data = 0
        for e in exprs:
            if query(e.replace("$instance", ".*")):
                with_data += 1
        summary["dashboard expressions run / with data"] = [len(exprs), with_data]
        if with_data < 10:
            sys.exit(f"only {with_data} of {len(exprs)} dashboard expressions have data")
        body = urllib.request.urlopen(f"http://{args.target}/metrics", timeout=5).read()
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        if lint.returncode != 0:
            sys.exit("promtool check metrics: " + (lint.stdout + lint.stderr).decode())
        summary["promtool"] = "clean"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
