"""Alert groups, acknowledge and silence, end to end: FATAL errors produced with confluent-kafka
as a shop would, the page in Debian's headless Chromium, counts recounted with pyiceberg.

usage:
  alerts_check.py produce BROKERS SERVICE=COUNT ...      FATAL errors, event time now
  alerts_check.py page URL DATA_DIR ARTIFACTS STEP USER PASSWORD
                                                          STEP: act | kept | undo | recount
    Each step logs in through the login page first (USER, PASSWORD).
    act:  the groups equal the recount; silence `payment`, acknowledge `search` (with a note)
    kept: after a restart the page still shows both (log in as a viewer: no buttons)
    undo: unsilence `payment`, undo the acknowledgement of `search`
    recount: no page; FATAL_ERROR alerts per service in the lake
Prints a JSON summary.
"""
import datetime
import json
import sys
import time
import uuid

from browser_check import Browser

SEEN = "alerts_check"


def produce(brokers, specs):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    sent = 0
    for spec in specs:
        service, count = spec.split("=")
        for i in range(int(count)):
            at = now + datetime.timedelta(milliseconds=sent)
            ev = {"error_id": f"{service}-{uuid.uuid4()}", "service_name": service,
                  "error_message": f"{service} down ({i})", "severity": "FATAL",
                  "error_time": at.isoformat(timespec="microseconds")}
            p.produce("errors_topic", key=service, value=json.dumps(ev))
            sent += 1
    p.flush(30)
    return {"produced": sent}


def recount(data_dir):
    """FATAL_ERROR alerts per service in the alerts table (pyiceberg)."""
    from pyiceberg.catalog.sql import SqlCatalog

    cat = SqlCatalog("shopwatch", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse")
    out = {}
    for r in cat.load_table("ecommerce_db.alerts").scan().to_arrow().to_pylist():
        if r["alert_type"] == "FATAL_ERROR":
            out[r["alert_key"]] = out.get(r["alert_key"], 0) + 1
    return out


GROUPS_JS = """[...document.querySelectorAll('#alert-groups tbody tr')].map(tr => ({
  key: tr.dataset.key, state: tr.dataset.state,
  count: Number(tr.children[3].textContent.replace(/,/g, '')), said: tr.children[6].textContent }))"""


def groups(b):
    return {g["key"].split("|", 1)[1]: g for g in b.eval(GROUPS_JS) if g["key"].startswith("FATAL_ERROR|")}


def click(b, key, action):
    sel = f"#alert-groups tr[data-key={json.dumps('FATAL_ERROR|' + key)}] button[data-action={json.dumps(action)}]"
    b.wait_for(f"the {action} button of {key}", f"!!document.querySelector({json.dumps(sel)})", 30)
    b.eval(f"document.querySelector({json.dumps(sel)}).click()")
    b.wait_for(f"{action} of {key} recorded", "document.getElementById('alert-action-status').textContent.includes('recorded')", 30)


def wait_state(b, key, state, timeout=30):
    b.wait_for(f"{key} {state}", f"(() => {{ const tr = document.querySelector('#alert-groups tr[data-key={json.dumps('FATAL_ERROR|' + key)}]'); return tr && tr.dataset.state === {json.dumps(state)}; }})()", timeout)


def login(b, url, user, password):
    """The page sends a browser without a session to /login; log in with the form."""
    b.call("Page.navigate", url=url)
    b.wait_for("the login form", "location.pathname === '/login' && !!document.querySelector('form input[name=password]')", 30)
    b.eval(f"document.querySelector('input[name=username]').value = {json.dumps(user)}")
    b.eval(f"document.querySelector('input[name=password]').value = {json.dumps(password)}")
    b.eval("document.querySelector('form').submit()")
    b.wait_for("the dashboard after login", "location.pathname === '/' && !!document.getElementById('conn')", 30)
    b.wait_for("the session", f"document.querySelector('#who span') && document.querySelector('#who span').textContent.startsWith({json.dumps(user)})", 30)


def page(url, data_dir, artifacts, step, user, password):
    b = Browser(artifacts)
    summary = {}
    try:
        login(b, url, user, password)
        b.wait_for("the websocket to go live", "document.getElementById('conn').classList.contains('live')", 30)
        if step == "act":
            # Each service is one group whose count is the lake's.
            deadline = time.time() + 60
            while True:
                shown, lake = groups(b), recount(data_dir)
                if shown and all(k in shown and shown[k]["count"] == n for k, n in lake.items()) and set(shown) == set(lake):
                    break
                if time.time() > deadline:
                    raise AssertionError(f"groups on the page {shown} never matched the lake {lake}")
                time.sleep(0.5)
            summary["groups (page == lake recount)"] = {k: g["count"] for k, g in shown.items()}
            click(b, "payment", "silence")
            wait_state(b, "payment", "silenced")
            b.eval("document.getElementById('alert-note').value = 'known incident, on it'")
            click(b, "search", "acknowledge")
            wait_state(b, "search", "acknowledged")
            said = groups(b)["search"]["said"]
            assert "known incident, on it" in said, said
            b.screenshot("alerts-acted.png")
        elif step == "kept":
            wait_state(b, "payment", "silenced", 60)
            wait_state(b, "search", "acknowledged", 60)
            buttons = b.eval("document.querySelectorAll('#alert-groups button').length")
            assert buttons == 0, f"a viewer sees {buttons} action buttons"
            summary["viewer buttons"] = buttons
            b.screenshot("alerts-after-restart.png")
        elif step == "undo":
            click(b, "payment", "unsilence")
            wait_state(b, "payment", "open")
            click(b, "search", "unacknowledge")
            wait_state(b, "search", "open")
            # Phone width: the alerts panel scrolls inside itself.
            b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
            time.sleep(1)
            width = b.eval("document.documentElement.scrollWidth")
            assert width <= 392, f"page is {width}px wide at a 390px phone width"
            b.screenshot("alerts-phone.png")
            b.call("Emulation.clearDeviceMetricsOverride")
        summary["states"] = {k: g["state"] for k, g in groups(b).items()}
        b.eval("1")
        assert not b.problems, "console errors:\n" + "\n".join(b.problems)
        summary["console errors"] = 0
    finally:
        b.close()
    return summary


def main():
    if sys.argv[1] == "produce":
        out = produce(sys.argv[2], sys.argv[3:])
    elif sys.argv[5] == "recount":
        out = recount(sys.argv[3])
    else:
        out = page(*sys.argv[2:8])
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
