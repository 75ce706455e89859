// The Aelpher dashboard: reads /app/api/state, draws it, and sends changes back.
// Every call carries Telegram's launch data (Authorization: tma <initData>); nothing is stored.
"use strict";
(function () {
  var tg = (window.Telegram && window.Telegram.WebApp) || null;
  var initData = tg ? tg.initData : "";
  var state = null;
  var pending = null; // a change waiting for "Save anyway"
  var closeEditor = null; // closes the open minutes editor (BackButton)

  function $(id) { return document.getElementById(id); }

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === "text") el.textContent = attrs[k];
        else if (k === "on") el.addEventListener("click", attrs[k]);
        else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) el.setAttribute(k, attrs[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return el;
  }

  function haptic(kind) {
    if (!tg || !tg.HapticFeedback || !tg.isVersionAtLeast || !tg.isVersionAtLeast("6.1")) return;
    try {
      if (kind === "tap") tg.HapticFeedback.impactOccurred("light");
      else tg.HapticFeedback.notificationOccurred(kind);
    } catch (e) { /* not in Telegram */ }
  }

  function requestId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function call(method, path, body) {
    var headers = { "Authorization": "tma " + initData };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["X-Request-Id"] = requestId();
    }
    return fetch("api/" + path, {
      method: method, headers: headers, cache: "no-store",
      body: method === "GET" ? undefined : JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        return { status: r.status, data: data };
      });
    });
  }

  function fail(message) {
    $("loading").hidden = true;
    $("content").hidden = true;
    $("error-text").textContent = message;
    $("error").hidden = false;
    $("main").setAttribute("aria-busy", "false");
    document.body.setAttribute("data-state", "error");
    haptic("error");
  }

  function notice(text, bad) {
    var n = $("notice");
    n.textContent = text || "";
    n.className = bad ? "notice bad" : "notice";
  }

  function setBack(fn) {
    closeEditor = fn;
    if (!tg || !tg.BackButton || !tg.isVersionAtLeast("6.1")) return;
    if (fn) tg.BackButton.show(); else tg.BackButton.hide();
  }

  function change(method, path, body, buttons) {
    haptic("tap");
    (buttons || []).forEach(function (b) { b.disabled = true; });
    return call(method, path, body).then(function (r) {
      (buttons || []).forEach(function (b) { b.disabled = false; });
      if (r.status === 200 && r.data.state) {
        draw(r.data.state);
        notice(r.data.message, false);
        haptic("success");
        return true;
      }
      if (r.status === 202) { notice(r.data.message, false); haptic("warning"); return true; }
      if (r.status === 401 || r.status === 403) { fail(r.data.error || "Not allowed."); return false; }
      if (r.data.code === "confirm") { ask(r.data.error, method, path, body); return false; }
      notice(r.data.error || "Something went wrong.", true);
      haptic("error");
      // Gone or refused: the chat (or another device) changed it meanwhile; show what is true now.
      if (r.data.code === "not_found" || r.data.code === "conflict") refresh();
      return false;
    }, function () {
      (buttons || []).forEach(function (b) { b.disabled = false; });
      notice("The bot can't be reached, so this may not have been saved. Try again in a moment.", true);
      haptic("error");
      return false;
    });
  }

  function refresh() {
    return call("GET", "state").then(function (r) {
      if (r.status === 200) draw(r.data);
    }, function () { /* the notice already says what went wrong */ });
  }

  function ask(text, method, path, body) {
    pending = { method: method, path: path, body: body };
    $("confirm-text").textContent = text;
    $("confirm").hidden = false;
    $("confirm-yes").focus();
    setBack(function () { $("confirm").hidden = true; pending = null; });
    haptic("warning");
  }

  function pct(x) { return (Math.round(x * 10) / 10) + "%"; }

  var STATUS = { active: "🟢", warm: "🟡", idle: "🔴", blocked: "⛔" };  // as the chat shows them

  function itemRow(t, it) {
    var flags = it.locked ? " 🔒 locked" : it.chosen ? " ✋ chosen" : "";
    var actions = h("div", { "class": "actions" });
    var base = "items/" + it.id + "/";
    function act(label, path, body, name) {
      var b = h("button", { type: "button", "aria-label": name || null, text: label });
      b.addEventListener("click", function () { change("POST", path, body, [b]); });
      return b;
    }
    if (it.current) {
      actions.appendChild(it.locked ? act("🔓 Unlock", base + "unlock", {}, "Unlock " + it.title)
                                    : act("🔒 Lock", base + "lock", {}, "Lock " + it.title));
      actions.appendChild(act("✅ Done", base + "done", {}, "Done: " + it.title));
      var prog = h("button", { type: "button", "aria-label": "Progress on " + it.title, text: "▶ Progress" });
      prog.addEventListener("click", function () { editMinutes(actions, prog, base + "progress"); });
      actions.appendChild(prog);
    } else if (!t.items.some(function (x) { return x.locked; })) {
      actions.appendChild(act("Choose", base + "choose", {}, "Choose " + it.title));
    }
    var gap = h("select", { "aria-label": "Gap of " + it.title });
    for (var g = 0; g <= 5; g++) {
      gap.appendChild(h("option", { value: String(g), selected: g === it.gap ? "selected" : null, text: "gap " + g }));
    }
    gap.addEventListener("change", function () {
      change("PATCH", "items/" + it.id, { gap: Number(gap.value) }, [gap]);
    });
    actions.appendChild(gap);
    return h("li", { "class": it.current ? "item current" : "item", "data-item": it.id },
      h("div", { "class": "item-title" }, (it.current ? "➤ " : "") + it.title + flags),
      h("div", { "class": "explain" }, "score " + it.score + " · " + it.explanation),
      actions);
  }

  function editMinutes(actions, opener, path) {
    if (closeEditor) closeEditor();
    var input = h("input", { type: "number", min: "1", max: "1440", inputmode: "numeric", "aria-label": "Minutes of progress" });
    var save = h("button", { type: "button", text: "Save" });
    var box = h("span", { "class": "inline" }, input, save);
    opener.hidden = true;
    actions.appendChild(box);
    input.focus();
    var close = function () { box.remove(); opener.hidden = false; setBack(null); };
    setBack(close);
    save.addEventListener("click", function () {
      var m = parseInt(input.value, 10);
      if (!(m > 0)) { input.focus(); return; }
      change("POST", path, { minutes: m }, [save]).then(function (ok) { if (ok) setBack(null); });
    });
  }

  function theaterCard(t) {
    var title = "theater-" + t.arm;
    var add = h("form", { "class": "form add" },
      h("label", { "class": "wide" }, "New NBA in " + t.arm, h("input", { name: "title", maxlength: "200", required: "required" })),
      h("label", null, "Gap", (function () {
        var s = h("select", { name: "gap" });
        for (var g = 0; g <= 5; g++) s.appendChild(h("option", { value: String(g), selected: g === 3 ? "selected" : null, text: String(g) }));
        return s;
      })()),
      h("button", { type: "submit", text: "➕ Add" }));
    add.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = new FormData(add);
      change("POST", "items", { arm: t.arm, gap: Number(f.get("gap")), title: String(f.get("title")) },
        [add.querySelector("button")]);
    });
    var items = h("ul", { "class": "items", "aria-label": t.arm + " Next Best Actions" });
    t.items.forEach(function (it) { items.appendChild(itemRow(t, it)); });
    if (!t.items.length) items.appendChild(h("li", { "class": "item hint" }, "No open Next Best Action."));
    var autoBtn = null;
    if (t.items.some(function (x) { return x.chosen && !x.locked; })) {
      autoBtn = h("button", { type: "button", text: "🤖 Auto" });
      autoBtn.addEventListener("click", function () { change("POST", "theaters/" + t.arm + "/auto", {}, [autoBtn]); });
    }
    var logged = state.overload.minutes_7d ? pct(t.energy_logged) + " (" + t.minutes_7d + " min)" : "nothing yet";
    return h("section", { "class": "card theater", "aria-labelledby": title, "data-arm": t.arm },
      h("div", { "class": "theater-head" },
        h("h2", { id: title }, t.arm),
        h("span", null, (STATUS[t.status] || "") + " " + t.status + (t.blocked_reason ? " (" + t.blocked_reason + ")" : ""))),
      h("p", null, "Progress " + pct(t.progress)),
      h("div", { "class": "bar", "aria-hidden": "true" }, h("div", { "data-w": t.progress })),
      h("p", null, "Energy planned " + t.energy_planned + "% · logged " + logged + " in 7 days"),
      items, autoBtn, add);
  }

  function chart(c) {
    var NS = "http://www.w3.org/2000/svg";
    function s(tag, attrs) {
      var el = document.createElementNS(NS, tag);
      for (var k in attrs) el.setAttribute(k, attrs[k]);
      return el;
    }
    var W = 340, H = 170, L = 28, R = 28, T = 8, B = 22;
    var days = c.days, n = days.length || 1;
    var max = 1;
    days.forEach(function (d) { max = Math.max(max, (d.minutes.ibm + d.minutes.cs) / 60); });
    max = Math.ceil(max);
    var pw = (W - L - R) / n, ph = H - T - B;
    var svg = s("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img" });
    var total = { ibm: 0, cs: 0 };
    days.forEach(function (d) { total.ibm += d.minutes.ibm; total.cs += d.minutes.cs; });
    var last = days.length ? days[days.length - 1].risk : 0;
    var label = "Hours logged per day over the last " + days.length + " days: ibm " +
      Math.round(total.ibm / 6) / 10 + " h, cs " + Math.round(total.cs / 6) / 10 +
      " h in all; overload risk now " + Math.round(last) + "% (threshold " + c.threshold + "%).";
    var t = s("title", {}); t.textContent = label; svg.appendChild(t);
    svg.setAttribute("aria-label", label);
    [0, max].forEach(function (v) {
      var y = T + ph - ph * v / max;
      svg.appendChild(s("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "currentColor", "stroke-opacity": "0.15" }));
      var tx = s("text", { x: L - 4, y: y + 3, "text-anchor": "end" }); tx.textContent = v + "h"; svg.appendChild(tx);
    });
    var ty = T + ph - ph * c.threshold / 100;
    svg.appendChild(s("line", { x1: L, x2: W - R, y1: ty, y2: ty, "class": "threshold", "stroke-dasharray": "3 3" }));
    var rt = s("text", { x: W - R + 4, y: ty + 3 }); rt.textContent = c.threshold + "%"; svg.appendChild(rt);
    var pts = [];
    days.forEach(function (d, i) {
      var x = L + i * pw + pw * 0.15, w = pw * 0.7, y0 = T + ph;
      ["ibm", "cs"].forEach(function (arm) {
        var hgt = ph * (d.minutes[arm] / 60) / max;
        if (hgt > 0) {
          svg.appendChild(s("rect", { x: x, y: y0 - hgt, width: w, height: hgt, "class": "bar-" + arm }));
          y0 -= hgt;
        }
      });
      pts.push((L + i * pw + pw / 2) + "," + (T + ph - ph * Math.min(d.risk, 100) / 100));
      if (i % 2 === (days.length - 1) % 2) {
        var lbl = s("text", { x: L + i * pw + pw / 2, y: H - 8, "text-anchor": "middle" });
        lbl.textContent = d.day.slice(8, 10);
        svg.appendChild(lbl);
      }
    });
    svg.appendChild(s("polyline", { points: pts.join(" "), "class": "risk-line" }));
    var legend = h("div", { "class": "legend" },
      h("span", null, h("span", { "class": "swatch sw-ibm" }), "ibm hours"),
      h("span", null, h("span", { "class": "swatch sw-cs" }), "cs hours"),
      h("span", null, h("span", { "class": "swatch sw-risk" }), "overload risk % (dashed: threshold)"));
    var box = h("div");
    box.appendChild(svg);
    box.appendChild(legend);
    return box;
  }

  function when(iso) {
    var d = new Date(iso);
    try {
      return d.toLocaleString(undefined, { timeZone: state.timezone, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
    } catch (e) { return d.toISOString().slice(0, 16).replace("T", " ") + " UTC"; }
  }

  function draw(s) {
    state = s;
    pending = null;
    $("confirm").hidden = true;
    if (closeEditor) setBack(null); // the minutes editor and the question are gone: Back too
    $("hello").textContent = s.user.first_name ? "Hi, " + s.user.first_name : "";
    var o = s.overload;
    var fill = $("gauge-fill");
    fill.style.width = Math.min(100, o.risk) + "%";
    fill.className = o.risk >= o.threshold ? "gauge-fill high" : "gauge-fill";
    $("gauge-threshold").style.left = Math.min(100, o.threshold) + "%";
    $("risk").textContent = pct(o.risk) + (o.risk >= o.threshold ? " — over your " + o.threshold + "% threshold" : "");
    $("trend").textContent = "(" + o.trend + ")";
    $("risk-inputs").textContent = o.inputs + ".";
    $("combined").textContent = "Combined progress " + pct(s.combined_progress);
    var box = $("theaters");
    box.textContent = "";
    s.theaters.forEach(function (t) { box.appendChild(theaterCard(t)); });
    box.querySelectorAll(".bar > div").forEach(function (el) { el.style.width = Math.min(100, Number(el.getAttribute("data-w"))) + "%"; });
    var ch = $("chart");
    ch.textContent = "";
    ch.appendChild(chart(s.chart));
    var hist = $("history");
    hist.textContent = "";
    s.history.forEach(function (e) {
      var what = e.kind === "log" ? "📝 " + e.text + (e.minutes ? " · " + e.minutes + " min" : "")
                                  : "💡 " + e.text + (e.detail ? " — " + e.detail : "");
      hist.appendChild(h("li", null, h("span", { "class": "hint" }, when(e.at) + " · " + e.arm + " "), what));
    });
    if (!s.history.length) hist.appendChild(h("li", { "class": "hint" }, "Nothing logged yet."));
    $("loading").hidden = true;
    $("error").hidden = true;
    $("content").hidden = false;
    $("main").setAttribute("aria-busy", "false");
    if (document.body.getAttribute("data-state") !== "ready" && window.performance && performance.mark) {
      performance.mark("dashboard-ready"); // first render: bench/webapp.py reads it
    }
    document.body.setAttribute("data-state", "ready");
  }

  function formChange(form, path, make) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = form.querySelector("button");
      // Sent and not answered yet: Telegram's main button (requestSubmit) ignores "disabled".
      if (button.disabled) return;
      change("POST", path, make(new FormData(form)), [button]).then(function (ok) {
        if (ok) form.reset();
      });
    });
  }

  function start() {
    $("confirm-yes").addEventListener("click", function () {
      if (!pending) return;
      var p = pending;
      var body = Object.assign({}, p.body, { confirmed: true });
      setBack(null);
      change(p.method, p.path, body, [$("confirm-yes")]);
    });
    $("confirm-no").addEventListener("click", function () { if (closeEditor) closeEditor(); });
    formChange($("log-form"), "logs", function (f) {
      return { arm: f.get("arm"), minutes: Number(f.get("minutes")), action: String(f.get("action")) };
    });
    formChange($("reflect-form"), "reflections", function (f) {
      return { arm: f.get("arm"), evidence: String(f.get("evidence")), context: String(f.get("context") || "") || null };
    });
    if (tg) {
      tg.ready();
      if (tg.expand) tg.expand();
      if (tg.BackButton && tg.isVersionAtLeast("6.1")) tg.BackButton.onClick(function () { if (closeEditor) closeEditor(); });
      if (tg.MainButton) {
        // The main button logs time while the log form is being filled in.
        var form = $("log-form");
        tg.MainButton.setText("Log time");
        tg.MainButton.onClick(function () { form.requestSubmit(); });
        form.addEventListener("focusin", function () { tg.MainButton.show(); });
        form.addEventListener("focusout", function () { setTimeout(function () {
          if (!form.contains(document.activeElement)) tg.MainButton.hide();
        }, 0); });
      }
      document.documentElement.setAttribute("data-scheme", tg.colorScheme || "light");
    }
    if (!initData) {
      fail("This page has no launch data from Telegram.");
      return;
    }
    call("GET", "state").then(function (r) {
      if (r.status === 200) draw(r.data);
      else fail(r.data.error || "The dashboard could not be loaded (" + r.status + ").");
    }, function () { fail("The bot can't be reached."); });
  }

  start();
})();
