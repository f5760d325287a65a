// outagewatch dashboard. Builds every element with DOM calls; text from
// posts and from the server only ever goes into textContent or attributes
// set one by one, never parsed as HTML. Renders an inline snapshot once
// (the replay report), or polls /api/v1/dashboard every few seconds.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var POLL_MS = 5000;
  // A daemon that stops answering (stopped, swapped out, a hung
  // connection) must not leave old figures under a green pill: each fetch
  // is given up after FETCH_TIMEOUT_MS, and figures older than STALE_MS
  // are called stale.
  var FETCH_TIMEOUT_MS = 10000;
  var STALE_MS = 2 * POLL_MS + 2000;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function num(x, digits) {
    if (typeof x !== "number" || !isFinite(x)) return "-";
    return x.toFixed(digits === undefined ? 1 : digits);
  }

  // "2026-07-04T14:17:10Z" -> "2026-07-04 14:17:10 UTC"
  function when(t) {
    if (typeof t !== "string") return "-";
    return t.replace("T", " ").replace("Z", " UTC");
  }

  function hhmm(t) {
    return typeof t === "string" && t.length >= 16 ? t.slice(11, 16) : "";
  }

  function fact(parent, label, value) {
    var span = el("span", null, label + " ");
    span.appendChild(el("b", null, value));
    parent.appendChild(span);
  }

  // A chart of per-minute points: reports as bars, the window's rate as a
  // line, the band from the expectation to the firing level, and optional
  // markers (incident start and end).
  function chart(points, opts) {
    opts = opts || {};
    var w = opts.width || 520, h = opts.height || 140;
    var left = 34, right = 8, top = 8, bottom = 18;
    var root = svg("svg", { viewBox: "0 0 " + w + " " + h, class: "chart", role: "img" });
    if (opts.service) root.setAttribute("data-service", opts.service);
    root.setAttribute("aria-label", "reports per minute" + (opts.service ? " for " + opts.service : ""));
    var n = points.length;
    if (n === 0) {
      var empty = svg("text", { x: left, y: h / 2 });
      empty.textContent = "no data yet";
      root.appendChild(empty);
      return root;
    }
    var max = 1;
    points.forEach(function (p) {
      max = Math.max(max, p.reports || 0, p.rate_per_min || 0, p.fire_per_min || 0);
    });
    max *= 1.1;
    var iw = w - left - right, ih = h - top - bottom;
    var step = iw / n;
    function x(i) { return left + i * step; }
    function y(v) { return top + ih - (Math.min(v, max) / max) * ih; }

    // The band: expected .. firing level.
    var upper = [], lower = [];
    points.forEach(function (p, i) {
      var cx = x(i) + step / 2;
      upper.push(cx.toFixed(1) + "," + y(p.fire_per_min || 0).toFixed(1));
      lower.unshift(cx.toFixed(1) + "," + y(p.expected_per_min || 0).toFixed(1));
    });
    root.appendChild(svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }));

    points.forEach(function (p, i) {
      var v = p.reports || 0;
      if (v <= 0) return;
      var bar = svg("rect", {
        class: "bar",
        x: (x(i) + step * 0.1).toFixed(1),
        y: y(v).toFixed(1),
        width: Math.max(1, step * 0.8).toFixed(1),
        height: (top + ih - y(v)).toFixed(1)
      });
      var tip = svg("title", {});
      tip.textContent = hhmm(p.minute) + ": " + v + " reports, " + num(p.rate_per_min) + " authors/min, expected " + num(p.expected_per_min, 2);
      bar.appendChild(tip);
      root.appendChild(bar);
    });

    var expected = points.map(function (p, i) {
      return (i ? "L" : "M") + (x(i) + step / 2).toFixed(1) + "," + y(p.expected_per_min || 0).toFixed(1);
    }).join(" ");
    root.appendChild(svg("path", { class: "expected", d: expected }));
    var rate = points.map(function (p, i) {
      return (i ? "L" : "M") + (x(i) + step / 2).toFixed(1) + "," + y(p.rate_per_min || 0).toFixed(1);
    }).join(" ");
    root.appendChild(svg("path", { class: "rate", d: rate }));

    (opts.markers || []).forEach(function (m) {
      for (var i = 0; i < n; i++) {
        if (points[i].minute === m) {
          var mx = x(i) + step / 2;
          root.appendChild(svg("line", { class: "marker", x1: mx, x2: mx, y1: top, y2: top + ih }));
        }
      }
    });

    root.appendChild(svg("line", { class: "axis", x1: left, x2: w - right, y1: top + ih, y2: top + ih }));
    var label = function (tx, ty, text, anchor) {
      var t = svg("text", { x: tx, y: ty, "text-anchor": anchor || "start" });
      t.textContent = text;
      root.appendChild(t);
    };
    label(left - 4, top + 8, num(max / 1.1, 0), "end");
    label(left - 4, top + ih, "0", "end");
    label(left, h - 4, hhmm(points[0].minute));
    label(w - right, h - 4, hhmm(points[n - 1].minute), "end");
    return root;
  }

  // The minute an RFC 3339 time falls in, as the series writes it.
  function minuteOf(t) {
    return typeof t === "string" && t.length >= 17 ? t.slice(0, 17) + "00Z" : null;
  }

  function incidentCard(inc) {
    var card = el("article", {
      class: "card incident " + (inc.open ? "open" : "resolved"),
      "data-service": inc.service,
      "data-id": inc.id
    });
    var title = el("h3");
    title.appendChild(el("span", { class: "service-name" }, inc.service));
    title.appendChild(el("span", { class: "sev " + (["low", "medium", "high"].indexOf(inc.severity) >= 0 ? inc.severity : "low") }, inc.severity));
    title.appendChild(el("span", { class: "state" }, inc.open ? "open" : "resolved"));
    card.appendChild(title);
    var facts = el("div", { class: "facts" });
    fact(facts, "started", when(inc.started_at));
    fact(facts, inc.open ? "updated" : "resolved", when(inc.updated_at));
    fact(facts, "reports", inc.reports);
    fact(facts, "peak authors", inc.peak_authors);
    // The record changes only on an alert; an open incident also gets the
    // service's figures now, so a surge that kept growing is not shown at
    // its first alert's rate.
    if (inc.open && inc.live) {
      fact(facts, "rate now", num(inc.live.rate_per_min) + "/min");
      fact(facts, "expected now", num(inc.live.expected_per_min, 2) + "/min");
    }
    fact(facts, "rate at last alert", num(inc.rate_per_min) + "/min");
    fact(facts, "baseline at last alert", num(inc.baseline_per_min, 2) + "/min");
    // The live document sends only the number of alerts, not the alerts.
    fact(facts, "alerts", typeof inc.alert_count === "number" ? inc.alert_count : 0);
    card.appendChild(facts);
    if (inc.detail) card.appendChild(el("p", { class: "detail" }, inc.detail));
    var markers = [minuteOf(inc.started_at)];
    if (!inc.open) markers.push(minuteOf(inc.updated_at));
    card.appendChild(chart(inc.series || [], { service: inc.service, markers: markers }));
    if ((inc.top_phrases || []).length) {
      var chips = el("div", { class: "chips phrases" });
      inc.top_phrases.forEach(function (p) {
        chips.appendChild(el("bdi", { class: "chip" }, p.phrase + " × " + p.count));
      });
      card.appendChild(chips);
    }
    var langs = Object.keys(inc.languages || {});
    if (langs.length) {
      card.appendChild(el("div", { class: "facts" }, "languages: " + langs.map(function (l) {
        return l + " " + inc.languages[l];
      }).join(", ")));
    }
    if ((inc.samples || []).length) {
      var list = el("ul", { class: "samples" });
      inc.samples.forEach(function (s) {
        var item = el("li");
        // A post's text and link are strangers': each in its own <bdi>, so
        // a right-to-left override left open in one does not reverse the
        // next.
        item.appendChild(el("bdi", { class: "text" }, s.text));
        if (s.uri) item.appendChild(el("bdi", { class: "uri" }, s.uri));
        list.appendChild(item);
      });
      card.appendChild(list);
    }
    return card;
  }

  function serviceCard(entry) {
    var s = entry.status;
    var card = el("article", { class: "card service", "data-service": s.service });
    var title = el("h3");
    title.appendChild(el("span", { class: "service-name" }, s.service));
    if (s.severity) title.appendChild(el("span", { class: "sev " + s.severity }, s.severity));
    card.appendChild(title);
    var facts = el("div", { class: "facts" });
    fact(facts, "rate", num(s.rate_per_min) + "/min");
    fact(facts, "expected", num(s.expected_per_min, 2));
    fact(facts, "fires at", num(s.fire_per_min, 1));
    fact(facts, "p", s.p_value < 0.001 ? s.p_value.toExponential(1) : num(s.p_value, 3));
    card.appendChild(facts);
    card.appendChild(chart(entry.series || [], { service: s.service, width: 300, height: 90 }));
    return card;
  }

  function table(node, headers, rows) {
    clear(node);
    var head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", { class: h.num ? "num" : "" }, h.label)); });
    node.appendChild(head);
    if (!rows.length) {
      var tr = el("tr");
      tr.appendChild(el("td", { colspan: headers.length, class: "muted" }, "none"));
      node.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) {
      var tr = el("tr");
      cells.forEach(function (c, i) {
        var td = el("td", { class: headers[i].num ? "num" : "" });
        // A cell given as {text, cls}: cls may be empty (a recording's
        // state), which once printed the object itself.
        if (c && typeof c === "object") {
          td.textContent = c.text === null || c.text === undefined ? "-" : String(c.text);
          if (c.cls) td.className += " " + c.cls;
        } else {
          td.textContent = c === null || c === undefined ? "-" : String(c);
        }
        tr.appendChild(td);
      });
      node.appendChild(tr);
    });
  }

  function render(data) {
    document.getElementById("mode").textContent = data.report ? "replay report" : data.mode;
    var live = !data.report && data.mode === "daemon";
    var health = data.health || {};
    var ready = document.getElementById("ready");
    ready.textContent = data.ready ? "ready" : "not ready: " + (data.ready_reason || "no reason given");
    ready.className = "pill " + (data.ready ? "ok" : "bad");
    ready.setAttribute("data-ok", data.ready ? "ok" : "bad");
    var clock = document.getElementById("clock");
    var lag = data.event_lag_seconds;
    var behind = live && typeof lag === "number" ? " · " + ago(lag) + " behind" : "";
    clock.textContent = "event time " + when(data.event_time) + behind;
    clock.className = live && typeof lag === "number" && lag > (health.lag_secs || 120) ? "late" : "muted";

    var totals = data.incident_totals || {};
    var count = document.getElementById("incident-count");
    count.textContent = typeof totals.all === "number" && totals.all > data.incidents.length ?
      "showing " + data.incidents.length + " of " + totals.all + " (every open one: " + totals.open + ")" : "";

    var incidents = document.getElementById("incidents");
    clear(incidents);
    if (!data.incidents.length) incidents.appendChild(el("p", { class: "muted" }, "No incidents."));
    data.incidents.forEach(function (inc) { incidents.appendChild(incidentCard(inc)); });

    var services = document.getElementById("services");
    clear(services);
    if (!data.services.length) services.appendChild(el("p", { class: "muted" }, "No service has recent reports."));
    data.services.forEach(function (s) { services.appendChild(serviceCard(s)); });

    table(document.getElementById("closest"),
      [{ label: "service" }, { label: "nearest (share of firing rate)", num: true }, { label: "at" },
       { label: "rate/min", num: true }, { label: "fires at/min", num: true }, { label: "expected/min", num: true }],
      (data.closest || []).map(function (c) {
        return [c.service, num(c.ratio * 100, 0) + " %", when(c.at), num(c.rate_per_min), num(c.fire_per_min), num(c.expected_per_min, 2)];
      }));

    // The last failure quotes the server: a text cell, like every cell.
    table(document.getElementById("sources"),
      [{ label: "source" }, { label: "state" }, { label: "frames", num: true }, { label: "posts", num: true },
       { label: "reports", num: true }, { label: "lag s", num: true }, { label: "reconnects", num: true },
       { label: "stalls", num: true }, { label: "last failure" }],
      (data.sources || []).map(function (s) {
        return [s.name, sourceState(s, health), p(s).frames, p(s).posts, p(s).reports,
          typeof s.lag_seconds === "number" ? num(s.lag_seconds, 0) : null, s.reconnects, s.stalls,
          lastFailure(s)];
      }));

    table(document.getElementById("outbox"),
      [{ label: "sink" }, { label: "state" }, { label: "waiting", num: true }, { label: "oldest waiting" },
       { label: "delivered", num: true }, { label: "retries", num: true }, { label: "dead", num: true },
       { label: "last error" }],
      ((data.outbox || {}).sinks || []).map(function (s) {
        var error = s.failing ? s.failing.last_error : (s.last_dead_letter || {}).reason;
        return [s.name, sinkState(s), s.depth, when(s.oldest_pending_at), s.delivered, s.retries,
          s.dead_letter_count === null || s.dead_letter_count === undefined ? s.dead : s.dead_letter_count,
          error ? { text: error, cls: "down error" } : null];
      }));

    var st = data.stats || {};
    document.getElementById("stats").textContent =
      "outagewatch " + data.version + " · frames " + st.frames + " · posts " + st.posts +
      " · reports " + st.reports + " · recoveries " + st.recoveries + " · malformed " + st.malformed +
      " · alerts " + (typeof data.alerts_recorded === "number" ? data.alerts_recorded : st.alerts) +
      " · generated " + when(data.generated_at);
  }

  function p(source) { return source.pipeline || {}; }

  function ago(seconds) {
    var s = Math.max(0, Math.round(seconds));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }

  // "up" only when frames arrive: a connection that stays open but
  // silent, reconnected by the watchdog again and again, showed green.
  function sourceState(s, health) {
    if (s.connected === null || s.connected === undefined) return { text: "recording", cls: "" };
    if (!s.connected) return { text: "down", cls: "down" };
    // The source's own rule (`[sources.health]` over `[health]`): a quiet
    // relay given 600 s showed "silent" after the global 60 s.
    var silence = (s.health && s.health.silence_secs) || health.silence_secs || 60;
    if (typeof s.silent_seconds === "number" && s.silent_seconds > silence) {
      return { text: "silent " + ago(s.silent_seconds) + (s.stalls ? ", stalled " + s.stalls + "×" : ""), cls: "down" };
    }
    if (s.stalls) return { text: "up, stalled " + s.stalls + "×", cls: "warn" };
    return { text: "up", cls: "up" };
  }

  // Why the source's last connection ended or failed: red while it is
  // down, muted once it is connected again (it stays until the next one).
  function lastFailure(s) {
    if (typeof s.last_failure !== "string" || !s.last_failure) return null;
    return { text: s.last_failure, cls: s.connected === false ? "down error" : "muted error" };
  }

  function sinkState(s) {
    // Stopped: what waits and the dead letters the store holds, from this
    // run or an earlier one (this run's counter said "stopped" over
    // letters that died before a restart); the counter only when the
    // store could not be counted.
    if (s.stopped) {
      var dead = typeof s.dead_letter_count === "number" ? s.dead_letter_count : (s.dead || 0);
      var left = (s.depth || 0) + dead;
      return left ? { text: "stopped, " + left + " undelivered", cls: "down" } : { text: "stopped", cls: "" };
    }
    if (s.failing) return { text: "failing (" + s.failing.attempts + " tries since " + when(s.failing.since) + ")", cls: "down" };
    if (s.dead_letter_count || s.dead) return { text: "dead-lettering", cls: "down" };
    return { text: "ok", cls: "up" };
  }

  function problem(text) {
    var p = document.getElementById("problem");
    p.hidden = !text;
    p.textContent = text || "";
  }

  // A token given in the fragment (/#token=...) is kept for this tab and
  // sent as a bearer token; the fragment never reaches the server. The
  // token is everything after "token=" to the end of the fragment (a
  // token may hold "&" or "="), percent-decoded when it decodes, else as
  // typed: a raw "%" made decodeURIComponent throw, the token was never
  // kept and the page asked for the token it had just been given. It is
  // kept in a variable too, for a browser whose sessionStorage throws.
  var givenToken = null;
  function token() {
    var m = /(?:^#|&)token=([\s\S]+)$/.exec(location.hash);
    if (m) {
      givenToken = m[1];
      try { givenToken = decodeURIComponent(m[1]); } catch (e) { /* a raw %: as typed */ }
      try { sessionStorage.setItem("outagewatch-token", givenToken); } catch (e) { /* private mode */ }
      history.replaceState(null, "", location.pathname + location.search);
    }
    if (givenToken !== null) return givenToken;
    try { return sessionStorage.getItem("outagewatch-token"); } catch (e) { return null; }
  }

  var lastOk = Date.now();
  var lastGenerated = null;
  var lastError = null;

  // Runs every second, so the warning grows while a fetch hangs.
  function staleness() {
    var age = Date.now() - lastOk;
    if (age <= STALE_MS) {
      problem(lastError);
      return;
    }
    var from = lastGenerated ? lastGenerated.slice(11, 19) + " UTC" : "never";
    problem("No answer for " + ago(age / 1000) + "; figures from " + from +
      (lastError ? " (" + lastError + ")" : ""));
    var ready = document.getElementById("ready");
    ready.textContent = "stale";
    ready.className = "pill bad";
  }

  function poll() {
    var headers = {};
    var t = token();
    if (t) headers.Authorization = "Bearer " + t;
    var options = { headers: headers, cache: "no-store" };
    var timer = null;
    if (typeof AbortController === "function") {
      var abort = new AbortController();
      options.signal = abort.signal;
      timer = setTimeout(function () { abort.abort(); }, FETCH_TIMEOUT_MS);
    }
    fetch("/api/v1/dashboard", options)
      .then(function (r) {
        if (r.status === 401) throw new Error("401: open the page as /#token=YOUR_TOKEN");
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        lastOk = Date.now();
        lastGenerated = data.generated_at;
        lastError = null;
        render(data);
        staleness();
      })
      .catch(function (e) {
        lastError = "Cannot load data: " + (e.name === "AbortError" ?
          "no answer within " + FETCH_TIMEOUT_MS / 1000 + " s" : e.message);
        staleness();
      })
      .then(function () {
        if (timer) clearTimeout(timer);
        setTimeout(poll, POLL_MS);
      });
  }

  var inline = document.getElementById("snapshot");
  if (inline) {
    render(JSON.parse(inline.textContent));
  } else {
    poll();
    setInterval(staleness, 1000);
  }
})();
