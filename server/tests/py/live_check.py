"""The operators' dashboard in Debian's headless Chromium: provisional values, time ranges, top
products, conversion, the funnel, the rows behind figures, local time and UTC, phone width.

Events are produced now (confluent-kafka, as a shop would); every figure the page shows is
compared with a recount of the raw tables read with pyiceberg (not our code):
- the orders card moves within seconds of the events, marked provisional (the lake cannot have
  them yet: the window closes 10 s after it ends), then turns exact and equals the recount;
- the top products, conversion (all and by device, never above 100 %) and the funnel equal
  recounts of the raw rows; the page draws every chart the KPIs declare;
- the time-range buttons change the trends, the cards and the URL, and the URL restores them;
- the rows behind a card, a chart point, a product, a funnel step and an alert group;
- times are local by default, UTC after the toggle (kept in the URL);
- at 390 px nothing is wider than the screen; no console errors. Screenshots in --artifacts.

usage: live_check.py --url URL --data-dir LAKE --brokers B --artifacts DIR
"""
import argparse
import datetime
import json
import os
import re
import sys
import time
import urllib.request

from confluent_kafka import Producer
from pyiceberg.catalog.sql import SqlCatalog

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "load", "checkers"))
from browser_check import Browser, CARDS_JS, recount, same  # noqa: E402
import check_kpis  # noqa: E402

ORDERS = 40
DEVICES = ["desktop", "mobile", "tablet"]


def ts(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def ms(t):
    return int((t - datetime.datetime(1970, 1, 1)).total_seconds() * 1000)


def produce(brokers):
    """40 orders over 12 products, 60 clicks on three devices, FATAL and ERROR errors from
    `payment`, all stamped now. Returns when the broker acknowledged them."""
    now = time.time()
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 1})
    for i in range(60):
        # A funnel: 15 users at home, 12 of them on a product, 5 of those in the cart (8 cart
        # clicks in all); the rest elsewhere.
        url = "/page/home" if i < 15 else "/page/product" if i < 27 else "/page/cart" if i < 35 else "/page/profile"
        p.produce("clicks_topic", json.dumps({
            "click_id": f"lc-{i}", "user_id": f"u{i % 15}", "url": url, "device_type": DEVICES[i % 3],
            "click_time": ts(now - 0.5)}).encode())
    for i in range(ORDERS):
        p.produce("orders_topic", json.dumps({
            "order_id": f"lo-{i}", "user_id": f"u{i % 20}", "product_id": f"prod-{i % 12:02d}",
            "quantity": 1 + i % 3, "price": 10.0 + (i % 12) * 2.5, "status": "CREATED",
            "order_time": ts(now)}).encode())
    for i in range(6):
        p.produce("errors_topic", json.dumps({
            "error_id": f"le-{i}", "service_name": "payment", "error_message": "card declined",
            "severity": "FATAL" if i < 3 else "ERROR", "error_time": ts(now)}).encode())
    left = p.flush(30)
    assert not left, f"{left} events not acknowledged"
    return now, time.time()


def raw(data_dir, table):
    cat = SqlCatalog("shopwatch", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse")
    return cat.load_table(f"ecommerce_db.{table}").scan().to_arrow().to_pylist()


def events_between(data_dir, table, col, start_ms, end_ms, pred=lambda r: True):
    return [r for r in raw(data_dir, table) if start_ms <= ms(r[col]) < end_ms and pred(r)]


def close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def rows_done(b, what):
    b.wait_for(f"the rows behind {what}", "document.getElementById('rows').dataset.state === 'done'", 30)
    return int(b.eval("document.getElementById('rows').dataset.count"))


def start_rows(b, js):
    b.eval("document.getElementById('rows').dataset.state = ''")
    b.eval(js)


def window_events(data_dir, start, end):
    """The (table, row) events of the orders and clicks in [start, end)."""
    return [("orders_processed", r) for r in events_between(data_dir, "orders_processed", "order_ts", start, end)] + \
        [("clicks_processed", r) for r in events_between(data_dir, "clicks_processed", "click_ts", start, end)]


def main():
    ap = argparse.ArgumentParser()
    for a in ["--url", "--data-dir", "--brokers", "--artifacts"]:
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    b = Browser(args.artifacts)
    s = {}
    try:
        b.call("Page.navigate", url=args.url)
        b.wait_for("the websocket to go live", "document.getElementById('conn').classList.contains('live')", 30)
        # Local time by default: the headers say so, the toggle offers UTC.
        assert b.eval("document.querySelector('th .tz').textContent") == "local"
        assert b.eval("document.getElementById('tz-toggle').textContent") == "Show UTC"
        time.sleep(2)  # the aggregators learn that someone watches (their 1 s tick)

        # 1. Provisional values within seconds of the events, marked as such.
        first, acked = produce(args.brokers)
        deadline = acked + 8
        seen = None
        while time.time() < deadline:
            v = b.eval("[document.querySelector('#kpi-orders .value').dataset.value, document.getElementById('kpi-orders').dataset.provisional]")
            if v[0] and float(v[0]) >= ORDERS:
                seen = (time.time(), v)
                break
            time.sleep(0.05)
        assert seen, "the orders card never showed the new orders within 8 s of the acknowledgement"
        assert seen[1] == [str(ORDERS), "true"], f"expected {ORDERS} provisional orders, got {seen[1]}"
        assert b.eval("document.querySelector('#kpi-orders .badge').textContent") == "provisional"
        s["provisional: first produce → card, s"] = round(seen[0] - first, 3)
        s["provisional: broker ack → card, s"] = round(seen[0] - acked, 3)
        b.screenshot("live-provisional.png")

        # 2. The window closes: the card turns exact and equals the lake recount.
        deadline = time.time() + 150
        page = lake = None
        while time.time() < deadline:
            page, lake = b.eval(CARDS_JS), recount(args.data_dir)
            flags = b.eval("[...document.querySelectorAll('.card')].map(c => c.dataset.provisional)")
            if page["orders"] == ORDERS and same(page, lake) and all(f == "false" for f in flags):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"cards never turned exact and equal to the recount: page {page} lake {lake}")
        s["exact cards (page == pyiceberg recount)"] = page

        # 3. Every declared chart is drawn; top products, conversion and the funnel equal
        #    recounts of the raw rows.
        layout = b.eval("layout")
        for c in layout["charts"]:
            dom = c["key"].replace(".", "-")
            prefix = {"line": "chart-", "funnel": "funnel-", "table": "table-"}[c["kind"]]
            assert b.eval(f"!!document.getElementById('{prefix}{dom}')"), f"chart {c['key']} not on the page"
        s["declared charts drawn"] = len(layout["charts"])
        b.wait_for("the top products", "lastSeries && (lastSeries.charts['top_products.top'].rows || []).length === 11", 60)
        prod = b.eval("lastSeries.charts['top_products.top']")
        cols = next(c["columns"] for c in layout["charts"] if c["key"] == "top_products.top")
        prod_rows = [dict(zip(cols, r)) for r in prod["rows"]]
        ev = [("orders_processed", r) for r in events_between(args.data_dir, "orders_processed", "order_ts", prod["window_start"], prod["window_end"])]
        want = check_kpis.top_products(ev)
        got = {(r["product_rank"],): r for r in prod_rows}
        assert set(got) == set(want), (sorted(got), sorted(want))
        for k, w in want.items():
            g = got[k]
            assert g["product_id"] == w["product_id"] and g["orders_count"] == w["orders_count"] and close(g["revenue"], w["revenue"]), (k, g, w)
        shown = b.eval("document.querySelector('#table-top_products-top tbody tr td:nth-child(2)').textContent")
        assert shown == want[(1,)]["product_id"], shown
        s["top products (page == recount), ranks"] = len(want)
        series = b.eval("wsSeries.charts")
        checked = 0
        by_device = series["device_conversion.by_device"]
        for point in by_device["points"]:
            start = point[0]
            win = window_events(args.data_dir, start, start + 60000)
            recounted = check_kpis.device_conversion(win)
            for device, rate in zip(by_device["values"], point[1:]):
                if rate is None:
                    assert (device,) not in recounted, (start, device)
                    continue
                w = recounted[(device,)]
                assert close(rate, w["conversion_rate"]) and rate <= 1.0, (start, device, rate, w)
                checked += 1
        for start, rate in series["conversion.conversion"]:
            o = len(events_between(args.data_dir, "orders_processed", "order_ts", start, start + 60000))
            c = len(events_between(args.data_dir, "clicks_processed", "click_ts", start, start + 60000))
            assert close(rate, o / c), (start, rate, o, c)
            checked += 1
        assert checked >= len(DEVICES) + 1, series
        legend = b.eval("document.getElementById('chart-device_conversion-by_device').parentElement.querySelector('.legend').textContent")
        assert all(d in legend for d in DEVICES), legend
        s["conversion points (page == recount, none above 100 %)"] = checked
        b.wait_for("the funnel", "lastSeries && lastSeries.charts['funnel.steps'].window_start", 60)
        funnel = b.eval("lastSeries.charts['funnel.steps']")
        want = check_kpis.funnel(window_events(args.data_dir, funnel["window_start"], funnel["window_end"]))
        got = [st["value"] for st in funnel["steps"]]
        assert got == [want["home_users"], want["product_users"], want["cart_users"], want["ordered_users"]], (got, want)
        assert got == [15, 12, 5, 5], got
        bars = b.eval("[...document.querySelectorAll('#funnel-funnel-steps .step')].map(e => Number(e.dataset.value))")
        assert bars == got, bars
        s["funnel (page == recount)"] = got
        # 4. The rows behind: card, chart point, product, funnel step, alert group.
        kp = b.eval("lastKpis")
        start_rows(b, "document.getElementById('kpi-orders').click()")
        n = rows_done(b, "the orders card")
        want = len(events_between(args.data_dir, "orders_processed", "order_ts", kp["as_of_ms"] - kp["period_s"] * 1000, kp["as_of_ms"]))
        assert n == want == ORDERS, (n, want)
        start_rows(b, "document.querySelector('#table-top_products-top tbody tr.has-rows').click()")
        n = rows_done(b, "a product")
        pid = prod_rows[0]["product_id"]
        want = len(events_between(args.data_dir, "orders_processed", "order_ts", prod["window_start"], prod["window_end"], lambda r: r["product_id"] == pid))
        assert n == want and n == b.eval("document.querySelectorAll('#rows-table tbody tr').length"), (n, want)
        start_rows(b, "document.querySelector('#funnel-funnel-steps .step[data-step=\"cart\"]').click()")
        n = rows_done(b, "the funnel's cart step")
        want = [r for r in events_between(args.data_dir, "clicks_processed", "click_ts", funnel["window_start"], funnel["window_end"])
                if check_kpis.funnel_step(r["url"]) == 2]
        assert n == len(want) == 8, (n, len(want))
        start_rows(b, """(() => { const svg = document.getElementById('chart-orders_revenue-orders'); const p = svg.shopwatchPoints[svg.shopwatchPoints.length - 1];
            const box = svg.getBoundingClientRect(); window.__rowsT = p.t;
            svg.dispatchEvent(new MouseEvent('click', { clientX: box.left + p.x, clientY: box.top + 50, bubbles: true })); })()""")
        n = rows_done(b, "a chart point")
        t = b.eval("window.__rowsT")
        want = len(events_between(args.data_dir, "orders_processed", "order_ts", t, t + 60000))
        assert n == want, (n, want)
        b.wait_for("the payment alert group", "(lastAlertGroups || []).some(g => g.alert_key === 'payment')", 60)
        g = b.eval("lastAlertGroups.find(g => g.alert_key === 'payment')")
        start_rows(b, "document.querySelector('#alert-groups tr[data-key=\"FATAL_ERROR|payment\"] a[data-rows]').click()")
        n = rows_done(b, "an alert group")
        want = len(events_between(args.data_dir, "errors_processed", "error_ts", g["first_at"] - 60000, g["last_at"] + 1000,
                                  lambda r: r["service_name"] == "payment" and r["severity"] in ("ERROR", "FATAL")))
        assert n == want == 6, (n, want)
        s["rows behind figures (page == recount)"] = {"card": ORDERS, "funnel cart clicks": 8, "alert group": want}
        b.screenshot("live-rows.png")

        # 5. Time ranges: the trends, the cards and the URL follow; the URL restores them.
        for rng, period_s, bucket, label in [("6h", 21600, 300000, "per 5 min, last 6 h"), ("24h", 86400, 900000, "per 15 min, last 24 h")]:
            b.eval(f"document.querySelector('.ranges button[data-range=\"{rng}\"]').click()")
            b.wait_for(f"the {rng} view", f"location.search.includes('range={rng}') && lastSeries && lastSeries.charts['orders_revenue.orders'].length > 0 && lastKpis.period_s === {period_s}", 30)
            pts = b.eval("lastSeries.charts['orders_revenue.orders']")
            assert all(p[0] % bucket == 0 for p in pts), pts
            assert sum(p[1] for p in pts) == ORDERS, pts
            assert b.eval("document.querySelector('.range-label').textContent") == label
            assert b.eval("document.querySelector('#kpi-orders .value').dataset.value") == str(ORDERS)
        b.screenshot("live-range-24h.png")
        b.call("Page.navigate", url=args.url.rstrip("/") + "/?range=6h&tz=utc")
        b.wait_for("the 6 h view from the URL", "document.querySelector('.ranges button[data-range=\"6h\"]').getAttribute('aria-pressed') === 'true' && lastSeries && lastSeries.charts['orders_revenue.orders'].length > 0", 30)
        assert b.eval("document.querySelector('th .tz').textContent") == "UTC"
        b.eval("document.querySelector('.ranges button[data-range=\"30m\"]').click()")
        b.wait_for("back to 30 min", "!location.search.includes('range') && document.querySelector('.range-label').textContent === 'per minute, last 30 min'", 10)
        s["time ranges"] = "6h, 24h, URL restore, back to 30m"

        # 6. UTC and local: the toggle flips every time on the page and the URL keeps it.
        b.wait_for("the freshness line", "document.getElementById('freshness').textContent.startsWith('data as of')", 30)
        fresh = b.eval("document.getElementById('freshness').textContent")
        assert re.match(r"data as of \d\d:\d\d:\d\d UTC, [\d.]+ s behind", fresh), fresh
        b.eval("document.getElementById('tz-toggle').click()")
        assert "tz=utc" not in b.eval("location.search")
        fresh = b.eval("document.getElementById('freshness').textContent")
        assert re.match(r"data as of \d\d:\d\d:\d\d local, [\d.]+ s behind", fresh), fresh
        s["time zone"] = "UTC from the URL, local after the toggle"

        # 7. Phone width, with the rows panel open.
        start_rows(b, "document.getElementById('kpi-errors').click()")
        rows_done(b, "the errors card")
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        time.sleep(1)
        width = b.eval("document.documentElement.scrollWidth")
        assert width <= 392, f"page is {width}px wide at a 390px phone width"
        b.screenshot("live-phone.png")
        s["phone width scrollWidth"] = width
        b.call("Emulation.clearDeviceMetricsOverride")
        b.eval("1")
        assert not b.problems, "console errors:\n" + "\n".join(b.problems)
        s["console errors"] = 0
    finally:
        b.close()
    print(json.dumps(s, indent=1, default=str))


if __name__ == "__main__":
    main()
