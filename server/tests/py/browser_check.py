"""The dashboard in real headless Chromium (Debian's), driven over the DevTools protocol.

Checks: the KPI cards equal a recount from the lake (pyiceberg); they change without a reload
when new events arrive; event strings with HTML show as text; the stale state shows when the
socket drops and the page reconnects; no console errors; usable at phone width. Screenshots
go to --artifacts.

usage: browser_check.py --url URL --data-dir LAKE --brokers B --artifacts DIR
"""
import argparse
import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket
from pyiceberg.catalog.sql import SqlCatalog

XSS_ORDER = "<img src=x onerror=alert(1)>"
XSS_SERVICE = "<b onmouseover=alert(2)>svc</b>"
PHASE1_ORDERS = 91
HERE = os.path.dirname(os.path.abspath(__file__))


class Browser:
    def __init__(self, artifacts):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            sys.exit("chromium not found: apt-get install chromium")
        self.profile = tempfile.mkdtemp(prefix="shopwatch-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", "--window-size=1280,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.time() + 30
        while time.time() < deadline and port is None:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            sys.exit("chromium did not start its DevTools endpoint")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.problems = []
        self.artifacts = artifacts
        for domain in ["Page", "Runtime", "Log"]:
            self.call(f"{domain}.enable")

    def _event(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.problems.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.problems.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:400])
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.problems.append("log: " + p["entry"].get("text", ""))
        elif method == "Page.javascriptDialogOpening":
            self.problems.append("a dialog opened (script ran): " + p.get("message", ""))
            self.call_nowait("Page.handleJavaScriptDialog", accept=True)

    def call_nowait(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.next_id

    def call(self, method, **params):
        my = self.call_nowait(method, **params)
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluating {expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, what, expr, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                v = self.eval(expr)
            except RuntimeError:
                v = None  # the document is still loading
            if v:
                return v
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def screenshot(self, name):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path = os.path.join(self.artifacts, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


CARDS_JS = """(() => { const o = {}; for (const n of ['orders','revenue','active_users','errors','error_rate']) {
  const v = document.querySelector('#kpi-' + n + ' .value').dataset.value; o[n] = v === undefined || v === '' ? null : Number(v); }
  return o; })()"""


def recount(data_dir):
    """The page's definitions, recomputed from the KPI tables with pyiceberg."""
    cat = SqlCatalog("shopwatch", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse")
    read = lambda t: cat.load_table(f"ecommerce_db.{t}").scan().to_arrow().to_pylist()
    whole = lambda rows: [r for r in rows if r["window_start"].second == 0 and r["window_start"].microsecond == 0]
    orders, traffic = whole(read("orders_revenue_per_minute")), whole(read("traffic_per_minute"))
    ends = [r["window_end"] for r in orders + traffic]
    if not ends:
        return None
    e = max(ends)
    period = lambda rows: [r for r in rows if e - datetime.timedelta(minutes=5) < r["window_end"] <= e]
    o, t = period(orders), period(traffic)
    errors = sum(r["error_count"] + r["fatal_count"] for r in t)
    seen = sum(r["orders_count"] + r["clicks_count"] for r in t)
    users = read("active_users_per_window")
    latest_users = max(users, key=lambda r: r["window_end"])["active_users_approx"] if users else None
    return {
        "orders": sum(r["orders_count"] for r in o) if o else None,
        "revenue": round(sum(r["total_revenue"] for r in o), 2) if o else None,
        "active_users": latest_users,
        "errors": errors if t else None,
        "error_rate": errors / seen if t and seen else None,
    }


def same(page, lake):
    if lake is None or set(page) != set(lake):
        return False
    for k, want in lake.items():
        got = page[k]
        if (got is None) != (want is None):
            return False
        if want is not None and abs(got - want) > 1e-9 * max(1.0, abs(want)):
            return False
    return True


def converge(b, data_dir, timeout, also=None):
    """Page cards and the lake recount must agree (the refresher trails commits by ~1 s)."""
    deadline = time.time() + timeout
    page = lake = None
    while time.time() < deadline:
        page, lake = b.eval(CARDS_JS), recount(data_dir)
        if same(page, lake) and (also is None or also(page)):
            return page
        time.sleep(1)
    raise AssertionError(f"page cards never matched the lake recount:\n page {page}\n lake {lake}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--artifacts", required=True)
    # A shop in another locale and currency: the browser's locale, and what an amount must show.
    ap.add_argument("--locale")
    ap.add_argument("--currency-symbol")
    args = ap.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    b = Browser(args.artifacts)
    summary = {}
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(args.url.rstrip("/") + "/livez", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        if args.locale:
            b.call("Emulation.setLocaleOverride", locale=args.locale)
        b.call("Page.navigate", url=args.url)
        b.wait_for("the websocket to go live", "document.getElementById('conn').classList.contains('live')", 30)
        b.wait_for("the cards to fill", "document.querySelector('#kpi-orders .value').dataset.value > ''", 60)
        # Phase 1 settled: its last 5 minutes hold 4 × 18 orders + 19 (the XSS order included).
        page1 = converge(b, args.data_dir, 90, also=lambda p: p["orders"] == PHASE1_ORDERS)
        summary["phase1 cards (page == lake recount)"] = page1
        if args.currency_symbol:
            revenue = b.eval("document.querySelector('#kpi-revenue .value').textContent")
            order_total = b.eval("document.querySelector('#orders tbody tr td.num').textContent")
            for shown in (revenue, order_total):
                assert args.currency_symbol in shown and "$" not in shown, (args.currency_symbol, revenue, order_total)
            summary["amounts shown as"] = [revenue, order_total]
        assert page1["orders"] and page1["orders"] > 0, page1

        # The health panel says what this instance does among several (alone: it owns).
        b.wait_for("the instance line", "document.querySelector('#instance-summary').textContent.includes('computes the KPI and alert tables')", 30)
        b.wait_for("its partitions", "document.querySelector('#instance-summary').textContent.includes('orders_topic 0,1,2')", 30)
        # Strings from events are text, never markup.
        b.wait_for("the XSS order in latest orders", f"[...document.querySelectorAll('#orders td')].some(td => td.textContent === {json.dumps(XSS_ORDER)})", 30)
        b.wait_for("the XSS service in the alerts", f"[...document.querySelectorAll('#alerts td')].some(td => td.textContent.includes({json.dumps(XSS_SERVICE)}))", 30)
        injected = b.eval("document.querySelectorAll('main img, main b, main script, main [onerror], main [onmouseover]').length")
        assert injected == 0, f"{injected} elements were injected from event strings"
        summary["xss"] = "rendered as text"
        b.screenshot("dashboard.png")

        # New events change the cards without a reload.
        b.eval("window.__sameDocument = 42")
        before_ids = b.eval("[...document.querySelectorAll('#orders tbody tr td:first-child')].map(td => td.textContent)")
        subprocess.run([sys.executable, os.path.join(HERE, "dashboard_stream.py"), args.brokers, "phase2"], check=True,
                       stdout=subprocess.DEVNULL)
        page2 = converge(b, args.data_dir, 150, also=lambda p: (p["orders"], p["revenue"]) != (page1["orders"], page1["revenue"]))
        after_ids = b.eval("[...document.querySelectorAll('#orders tbody tr td:first-child')].map(td => td.textContent)")
        assert b.eval("window.__sameDocument") == 42, "the page was reloaded"
        assert after_ids != before_ids and any(i.startswith("p2-") for i in after_ids), (before_ids, after_ids)
        summary["phase2 cards (changed live, page == lake recount)"] = page2

        # Freshness line (in UTC after the toggle: the page shows local time first), then the
        # stale state when the socket drops, then the reconnect.
        b.eval("document.getElementById('tz-toggle').click()")
        fresh = b.eval("document.getElementById('freshness').textContent")
        assert re.match(r"data as of \d\d:\d\d:\d\d UTC, [\d.]+ s behind", fresh), fresh
        b.eval("ws.close()")
        b.wait_for("the stale state", "document.body.classList.contains('stale') && !document.getElementById('stale-banner').hidden", 10)
        b.wait_for("the reconnect", "document.getElementById('conn').classList.contains('live')", 30)
        summary["stale then reconnected"] = True

        # Phone width: nothing wider than the screen (tables scroll inside their panels).
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        time.sleep(1)
        width = b.eval("document.documentElement.scrollWidth")
        assert width <= 392, f"page is {width}px wide at a 390px phone width"
        b.screenshot("dashboard-phone.png")
        summary["phone width scrollWidth"] = width
        b.call("Emulation.clearDeviceMetricsOverride")
        b.eval("1")  # collect pending events
        assert not b.problems, "console errors:\n" + "\n".join(b.problems)
        summary["console errors"] = 0
    finally:
        b.close()
    print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
