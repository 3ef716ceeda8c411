// The dashboard: a study list, a study page (counts, history, trials) and a trial page.
// Plain ES module, no build step. Everything it shows comes from /api/v1; a study page follows
// the study's event stream and re-reads only what a change touches (the counts it updates
// itself, then one aggregated plot and one page of the table).

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const liveBadge = document.getElementById("live");
const errorBox = document.getElementById("error");

let leave = () => {}; // undoes the current page's timers and streams

async function api(path, options = {}) {
  const response = await fetch("api/v1/" + path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function showError(e) {
  errorBox.textContent = String(e.message || e);
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(4) : v.toPrecision(6).replace(/\.?0+$/, "");
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function ago(time) {
  if (!time) return "";
  const s = (Date.now() - Date.parse(time)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(time).toLocaleString();
}

// A trial state in a change: `{"state": "pruned", "step": 3, …}`.
const stateOf = (change) => (typeof change.state === "string" ? change.state : change.state.state);

const STATES = ["completed", "running", "pending", "pruned", "failed"];

function countsBar(counts) {
  return el("div", { class: "counts", id: "counts" },
    el("span", { class: "count" }, el("b", { id: "count-total" }, String(counts.total)), " trials"),
    STATES.map((s) => el("span", { class: `count state-${s}` },
      el("b", { id: `count-${s}` }, String(counts[s])), ` ${s}`)));
}

// --- the study list -------------------------------------------------------------------------

async function listPage() {
  crumbs.textContent = "";
  const render = async () => {
    const studies = await api("studies");
    const rows = studies.map((s) => el("tr", { "data-study": s.name },
      el("td", {}, el("a", { href: `#/s/${encodeURIComponent(s.name)}` }, s.name)),
      el("td", { class: `state-${s.state}` }, s.state),
      el("td", { class: "num" }, String(s.counts.total)),
      el("td", { class: "num" }, String(s.counts.completed)),
      el("td", { class: "num" }, String(s.counts.running)),
      el("td", { class: "num" }, String(s.counts.pruned)),
      el("td", { class: "num" }, String(s.counts.failed)),
      el("td", { class: "num" }, s.best ? `${fmt(s.best.values[0])} (#${s.best.number})` : ""),
      el("td", {}, s.objectives.map((o) => `${o.metric} (${o.direction})`).join(", ")),
      el("td", {}, ago(s.updated_at))));
    const table = studies.length
      ? el("table", { id: "study-list" },
        el("thead", {}, el("tr", {}, ["study", "state", "trials", "completed", "running", "pruned",
          "failed", "best", "objectives", "last activity"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "empty" }, "No studies yet: `hyperion run study.yaml` creates one.");
    main.replaceChildren(el("h1", {}, "Studies"), table);
    clearError();
  };
  await render();
  // The list reads no trials (counts and best come from the store's indexes): cheap to renew.
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") render().catch(showError);
  }, 5000);
  return () => clearInterval(timer);
}

// --- the study page -------------------------------------------------------------------------

function historyChart(canvas, plot) {
  const ctx = canvas.getContext("2d");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  ctx.scale(ratio, ratio);
  const style = getComputedStyle(document.body);
  const ink = style.getPropertyValue("--ink").trim() || "#222";
  const accent = style.getPropertyValue("--accent").trim() || "#c33";
  const dots = style.getPropertyValue("--dots").trim() || "#36c";
  ctx.clearRect(0, 0, width, height);
  const xs = plot.points.number, ys = plot.points.value;
  canvas.dataset.points = String(xs.length);
  canvas.dataset.best = String(plot.best.number.length);
  if (xs.length === 0) {
    ctx.fillStyle = ink;
    ctx.fillText("no completed trial yet", 50, height / 2);
    return;
  }
  const finite = ys.filter(Number.isFinite);
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (lo === hi) { lo -= 1; hi += 1; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const left = 60, right = 10, top = 10, bottom = 24;
  const px = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const py = (y) => top + (1 - (y - lo) / (hi - lo)) * (height - top - bottom);
  ctx.strokeStyle = ink;
  ctx.fillStyle = ink;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, height - bottom);
  ctx.lineTo(width - right, height - bottom);
  ctx.stroke();
  ctx.font = "11px sans-serif";
  ctx.textAlign = "right";
  ctx.fillText(fmt(hi), left - 4, top + 8);
  ctx.fillText(fmt(lo), left - 4, height - bottom);
  ctx.textAlign = "center";
  ctx.fillText(String(x0), left, height - 8);
  ctx.fillText(String(x1), width - right - 10, height - 8);
  ctx.fillText(`trial (${plot.objective}, ${plot.direction.toLowerCase()})`, width / 2, height - 8);
  ctx.fillStyle = dots;
  for (let i = 0; i < xs.length; i++) {
    if (Number.isFinite(ys[i])) ctx.fillRect(px(xs[i]) - 1.5, py(ys[i]) - 1.5, 3, 3);
  }
  ctx.strokeStyle = accent;
  ctx.lineWidth = 2;
  ctx.beginPath();
  const bx = plot.best.number, by = plot.best.value;
  for (let i = 0; i < bx.length; i++) {
    const next = i + 1 < bx.length ? bx[i + 1] : x1;
    if (i === 0) ctx.moveTo(px(bx[i]), py(by[i]));
    else ctx.lineTo(px(bx[i]), py(by[i]));
    ctx.lineTo(px(next), py(by[i]));
  }
  ctx.stroke();
}

async function studyPage(name) {
  const path = `studies/${encodeURIComponent(name)}`;
  crumbs.replaceChildren(" / ", el("a", { href: `#/s/${encodeURIComponent(name)}` }, name));
  const study = await api(path);
  const table = { offset: 0, limit: 50, sort: "number", order: "asc", state: "" };
  const counts = { ...study.counts };
  const canvas = el("canvas", { id: "history-chart", class: "chart" });
  const tbody = el("tbody");
  const pager = el("span", { id: "pager" });
  const stopped = el("span", { id: "stop-note", class: "note" });
  const button = (label, kill) => el("button", {
    id: kill ? "kill" : "stop",
    onclick: async () => {
      const sure = kill ? confirm(`Stop "${name}" and kill its running trials?`) : true;
      if (!sure) return;
      try {
        await post(`${path}/stop`, { kill });
        stopped.textContent = kill ? "asked to stop and kill running trials" : "asked to stop (running trials finish)";
      } catch (e) { showError(e); }
    },
  }, label);
  const params = study.params.map((p) => p.name);
  const columns = [["number", "#"], ["state", "state"], ["value", study.objectives.length === 1 ? study.objectives[0].metric : "values"], ["duration", "duration"]]
    .concat(params.map((p) => [`param:${p}`, p]));
  const head = el("tr", {}, columns.map(([key, label]) => el("th", {
    "data-key": key,
    class: key === "state" ? "" : "sortable",
    onclick: () => {
      if (key === "state") return;
      table.order = table.sort === key && table.order === "asc" ? "desc" : "asc";
      table.sort = key;
      table.offset = 0;
      refreshTable().catch(showError);
    },
  }, label)));
  const stateFilter = el("select", {
    id: "state-filter",
    onchange: (e) => { table.state = e.target.value; table.offset = 0; refreshTable().catch(showError); },
  }, el("option", { value: "" }, "all states"), STATES.map((s) => el("option", { value: s }, s)));
  const page = (delta) => el("button", {
    class: "page",
    onclick: () => {
      table.offset = Math.max(0, table.offset + delta * table.limit);
      refreshTable().catch(showError);
    },
  }, delta < 0 ? "‹ previous" : "next ›");

  async function refreshTable() {
    const q = new URLSearchParams({ offset: table.offset, limit: table.limit, sort: table.sort, order: table.order });
    if (table.state) q.set("state", table.state);
    const result = await api(`${path}/trials?${q}`);
    tbody.replaceChildren(...result.trials.map((t) => el("tr", {
      "data-number": String(t.number),
      class: "row",
      onclick: () => { location.hash = `#/s/${encodeURIComponent(name)}/t/${t.number}`; },
    },
      el("td", { class: "num" }, String(t.number)),
      el("td", { class: `state-${t.state}` }, t.state),
      el("td", { class: "num" }, t.values ? t.values.map(fmt).join(", ") : ""),
      el("td", { class: "num" }, t.duration_s === null ? "" : `${t.duration_s.toFixed(1)} s`),
      params.map((p) => el("td", { class: "num" }, fmt(t.params[p]))))));
    const last = Math.min(result.offset + result.limit, result.total);
    pager.textContent = result.total ? `${result.offset + 1}–${last} of ${result.total}` : "no trials";
    for (const th of head.children) {
      th.classList.toggle("sorted", th.dataset.key === table.sort);
      th.dataset.order = th.dataset.key === table.sort ? table.order : "";
    }
  }

  async function refreshHistory() {
    const width = Math.max(100, Math.round(canvas.clientWidth || 800));
    historyChart(canvas, await api(`${path}/plots/history?width=${width}`));
  }

  function renderCounts() {
    for (const key of ["total"].concat(STATES)) {
      const node = document.getElementById(`count-${key}`);
      if (node) node.textContent = String(counts[key]);
    }
  }

  main.replaceChildren(
    el("h1", {}, name),
    el("div", { class: "toolbar" }, countsBar(counts), el("span", { class: "spacer" }),
      button("Stop", false), button("Kill", true), stopped),
    el("section", {}, el("h2", {}, "Optimization history"),
      el("div", { id: "history" }, canvas)),
    el("section", {}, el("h2", {}, "Trials"),
      el("div", { class: "toolbar" }, stateFilter, el("span", { class: "spacer" }), page(-1), pager, page(1)),
      el("div", { class: "scroll" }, el("table", { id: "trials" }, el("thead", {}, head), tbody))));
  await Promise.all([refreshHistory(), refreshTable()]);
  clearError();

  // Live: each change updates the counts at once; the plot and the table page are re-read at
  // most a few times a second, whatever the rate of changes.
  let pending = null;
  const schedule = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      Promise.all([refreshHistory(), refreshTable()]).catch(showError);
    }, 250);
  };
  const events = new EventSource(`api/v1/${path}/events?since=${study.seq}`);
  events.onopen = () => { liveBadge.hidden = false; };
  events.onerror = () => { liveBadge.hidden = true; };
  events.addEventListener("change", (message) => {
    const change = JSON.parse(message.data);
    const move = (from, to) => {
      if (from) counts[from] -= 1;
      if (to) counts[to] += 1;
    };
    switch (change.change) {
      case "trial_created":
        counts.total += 1;
        move(null, stateOf(change) === "pending" ? "pending" : "running");
        break;
      case "trial_started":
        move("pending", "running");
        break;
      case "trial_finished": {
        move("running", stateOf(change));
        break;
      }
      default:
        break;
    }
    renderCounts();
    schedule();
  });
  events.addEventListener("study_deleted", () => {
    events.close();
    showError(`study "${name}" was deleted`);
  });
  const resize = () => refreshHistory().catch(showError);
  window.addEventListener("resize", resize);
  return () => {
    events.close();
    liveBadge.hidden = true;
    clearTimeout(pending);
    window.removeEventListener("resize", resize);
  };
}

// --- the trial page -------------------------------------------------------------------------

function curveChart(canvas, steps, values) {
  historyChart(canvas, {
    points: { number: steps, value: values },
    best: { number: [], value: [] },
    objective: "intermediate value",
    direction: "by step",
  });
}

async function trialPage(name, number) {
  const path = `studies/${encodeURIComponent(name)}`;
  crumbs.replaceChildren(" / ", el("a", { href: `#/s/${encodeURIComponent(name)}` }, name), ` / trial ${number}`);
  const t = await api(`${path}/trials/${number}`);
  const rows = (pairs) => el("table", { class: "kv" }, el("tbody", {},
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, fmt(v))))));
  const steps = Object.keys(t.intermediate || {}).map(Number);
  const curve = el("canvas", { id: "curve-chart", class: "chart" });
  main.replaceChildren(
    el("h1", {}, `Trial ${t.number}`, " ", el("span", { class: `state-${t.state}`, id: "trial-state" }, t.state)),
    el("section", {}, el("h2", {}, "Result"), rows([
      ["values", t.values ? t.values.map(fmt).join(", ") : null],
      ["error", t.error], ["pruned", t.reason], ["at step", t.step],
      ["stop requested", t.stop_reason],
      ["started", t.datetime_start], ["finished", t.datetime_complete],
      ["duration", t.duration_s === null ? null : `${t.duration_s.toFixed(2)} s`],
      ["host", t.host], ["directory", t.directory], ["continues trial", t.parent],
      ["retries trial", t.retry_of]])),
    el("section", {}, el("h2", {}, "Parameters"), el("div", { id: "trial-params" }, rows(Object.entries(t.params)))),
    Object.keys(t.metrics || {}).length ? el("section", {}, el("h2", {}, "Metrics"), rows(Object.entries(t.metrics))) : null,
    steps.length ? el("section", {}, el("h2", {}, "Learning curve"), curve) : null,
    t.decisions && t.decisions.length ? el("section", {}, el("h2", {}, "Decisions"),
      el("table", { id: "decisions" }, el("thead", {}, el("tr", {}, ["policy", "action", "rationale"].map((h) => el("th", {}, h)))),
        el("tbody", {}, t.decisions.map((d) => el("tr", {}, el("td", {}, d.policy),
          el("td", {}, String(d.action)), el("td", {}, d.rationale)))))) : null);
  if (steps.length) curveChart(curve, steps, steps.map((s) => t.intermediate[s]));
  clearError();
  return () => {};
}

// --- routing --------------------------------------------------------------------------------

async function route() {
  leave();
  leave = () => {};
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "s" && parts.length >= 4 && parts[2] === "t") leave = await trialPage(parts[1], parts[3]);
    else if (parts[0] === "s" && parts[1]) leave = await studyPage(parts[1]);
    else leave = await listPage();
    document.body.dataset.ready = location.hash || "#/";
  } catch (e) {
    showError(e);
    document.body.dataset.ready = "error";
  }
}

window.addEventListener("hashchange", route);
route();
