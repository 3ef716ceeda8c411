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

// The page's content; absent parts (`null`) are left out.
function page(...nodes) {
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
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
  const chosen = new Set();
  const compare = el("button", {
    id: "compare",
    disabled: "",
    onclick: () => { location.hash = "#/compare/" + [...chosen].map(encodeURIComponent).join("/"); },
  }, "Compare selected");
  const render = async () => {
    const studies = await api("studies");
    const rows = studies.map((s) => el("tr", { "data-study": s.name },
      el("td", {}, el("input", {
        type: "checkbox",
        class: "pick",
        "aria-label": `compare ${s.name}`,
        ...(chosen.has(s.name) ? { checked: "" } : {}),
        onchange: (e) => {
          if (e.target.checked) chosen.add(s.name); else chosen.delete(s.name);
          compare.disabled = chosen.size < 2;
        },
      })),
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
        el("thead", {}, el("tr", {}, ["", "study", "state", "trials", "completed", "running", "pruned",
          "failed", "best", "objectives", "last activity"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "empty" }, "No studies yet: `hyperion run study.yaml` creates one.");
    page(el("h1", {}, "Studies"), table,
      studies.length > 1 ? el("div", { class: "toolbar" }, compare) : null);
    clearError();
  };
  await render();
  // The list reads no trials (counts and best come from the store's indexes): cheap to renew.
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") render().catch(showError);
  }, 5000);
  return () => clearInterval(timer);
}

// --- plots ----------------------------------------------------------------------------------

// A plot drawn by the server (the same drawing as `hyperion plot`), inserted as inline SVG and
// coloured by this page's stylesheet. `query()` gives its options; `after(svg)` adds behaviour.
function plotBox(url, kind, query = () => ({}), after = () => {}) {
  const box = el("div", { class: "plot-box", id: `plot-${kind}` });
  let drawn = 0;
  const refresh = async () => {
    const width = Math.max(320, Math.round(box.clientWidth || 900));
    const q = new URLSearchParams({ format: "svg", width, ...query() });
    const response = await fetch(`${url}/${kind}?${q}`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`${kind}: ${body.error ? body.error.message : response.statusText}`);
    }
    // The server's own drawing, its text escaped there: parsed by the HTML parser, which is
    // several times faster than DOMParser and importNode on a drawing of 10⁴ marks.
    box.innerHTML = await response.text();
    const svg = box.firstElementChild;
    box.dataset.drawn = String(++drawn);
    after(svg);
  };
  return { box, refresh };
}

// Parallel coordinates: drag along an axis to keep the lines that cross it there; click an
// axis to clear its brush. Brushes survive redraws.
function brushable(svg, brushes, status) {
  const lines = [...svg.querySelectorAll("path.line")];
  const apply = () => {
    let kept = 0;
    for (const line of lines) {
      const u = line.dataset.u.split(",");
      const inside = Object.entries(brushes).every(([axis, [lo, hi]]) => {
        const v = u[axis] === "" ? NaN : Number(u[axis]);
        return v >= lo && v <= hi;
      });
      line.classList.toggle("dim", !inside);
      if (inside) kept += 1;
    }
    status.textContent = Object.keys(brushes).length ? `${kept} of ${lines.length} lines selected` : "";
    status.dataset.kept = String(kept);
    for (const mark of svg.querySelectorAll("rect.brush-sel")) mark.remove();
    for (const [axis, [lo, hi]] of Object.entries(brushes)) {
      const handle = svg.querySelector(`g.paxis[data-axis="${axis}"] rect.brush`);
      if (!handle) continue;
      const top = Number(handle.getAttribute("y")), height = Number(handle.getAttribute("height"));
      const mark = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      mark.setAttribute("class", "brush-sel");
      mark.setAttribute("x", handle.getAttribute("x"));
      mark.setAttribute("width", handle.getAttribute("width"));
      mark.setAttribute("y", String(top + (1 - hi) * height));
      mark.setAttribute("height", String(Math.max(1, (hi - lo) * height)));
      handle.parentNode.insertBefore(mark, handle);
    }
  };
  for (const group of svg.querySelectorAll("g.paxis")) {
    const handle = group.querySelector("rect.brush");
    const axis = group.dataset.axis;
    const top = Number(handle.getAttribute("y")), height = Number(handle.getAttribute("height"));
    const unitAt = (event) => {
      const box = svg.getBoundingClientRect();
      const y = (event.clientY - box.top) * (svg.viewBox.baseVal.height / box.height);
      return Math.min(1, Math.max(0, 1 - (y - top) / height));
    };
    handle.addEventListener("pointerdown", (down) => {
      down.preventDefault();
      const start = unitAt(down);
      let moved = false;
      const move = (e) => {
        const now = unitAt(e);
        if (Math.abs(now - start) > 0.01) moved = true;
        if (moved) { brushes[axis] = [Math.min(start, now), Math.max(start, now)]; apply(); }
      };
      const up = () => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        if (!moved) { delete brushes[axis]; apply(); }
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    });
  }
  apply();
}

// --- the trial table: virtualized, only the visible rows are in the page --------------------

const ROW = 27;

function trialTable(path, name, study) {
  const params = study.params.map((p) => p.name);
  const multi = study.objectives.length > 1;
  const all = [["number", "#"], ["state", "state"], ["value", multi ? "values" : study.objectives[0].metric],
    ["duration", "duration"]].concat(params.map((p) => [`param:${p}`, p]));
  const saved = JSON.parse(localStorage.getItem(`hyperion.columns.${name}`) || "null");
  const shown = new Set(saved || all.map(([k]) => k));
  const table = { sort: "number", order: "asc", state: "", range: "", total: 0, first: -1, count: 0 };
  const viewport = el("div", { class: "viewport", id: "trials-viewport" });
  const tbody = el("tbody");
  const head = el("tr");
  const pager = el("span", { id: "pager", class: "note" });
  const grid = el("table", { id: "trials" }, el("thead", {}, head), tbody);
  viewport.append(grid);

  const cell = {
    number: (t) => el("td", { class: "num" }, String(t.number)),
    // A running pipeline trial shows where it is: IN_TRAINING, TRAINING_DONE_NO_EVAL, …
    state: (t) => el("td", { class: `state-${t.state}` }, t.phase || t.state),
    value: (t) => el("td", { class: "num" }, t.values ? t.values.map(fmt).join(", ") : ""),
    duration: (t) => el("td", { class: "num" }, t.duration_s === null ? "" : `${t.duration_s.toFixed(1)} s`),
  };
  const columns = () => all.filter(([k]) => shown.has(k));
  const renderHead = () => {
    head.replaceChildren(...columns().map(([key, label]) => el("th", {
      "data-key": key,
      class: key === "state" ? "" : "sortable" + (key === table.sort ? " sorted" : ""),
      "data-order": key === table.sort ? table.order : "",
      onclick: () => {
        if (key === "state") return;
        table.order = table.sort === key && table.order === "asc" ? "desc" : "asc";
        table.sort = key;
        reload();
      },
    }, label)));
  };

  // The rows in view (and a screenful either side) are fetched as one page; spacer rows keep
  // the scroll bar true to the whole result.
  let fetching = null;
  async function draw(force = false) {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 10);
    const count = Math.ceil(viewport.clientHeight / ROW) + 20;
    if (!force && first === table.first && count === table.count) return;
    table.first = first;
    table.count = count;
    const q = new URLSearchParams({ offset: first, limit: count, sort: table.sort, order: table.order });
    if (table.state) q.set("state", table.state);
    if (table.range) q.set("range", table.range);
    const result = await api(`${path}/trials?${q}`);
    table.total = result.total;
    const cols = columns();
    const pad = (rows) => el("tr", { class: "pad" }, el("td", { colspan: String(cols.length), height: String(rows * ROW) }));
    const before = pad(first), after = pad(Math.max(0, result.total - first - result.trials.length));
    tbody.replaceChildren(before, ...result.trials.map((t) => el("tr", {
      "data-number": String(t.number),
      class: "row",
      onclick: () => { location.hash = `#/s/${encodeURIComponent(name)}/t/${t.number}`; },
    }, cols.map(([key]) => (cell[key] ? cell[key](t) : el("td", { class: "num" }, fmt(t.params[key.slice(6)])))))), after);
    const last = Math.min(first + result.trials.length, result.total);
    pager.textContent = result.total ? `${result.total} trials · rows ${first + 1}–${last}` : "no trials";
    grid.dataset.total = String(result.total);
  }
  const refresh = (force = true) => {
    fetching = (fetching || Promise.resolve()).then(() => draw(force)).catch(showError);
    return fetching;
  };
  const reload = () => { viewport.scrollTop = 0; renderHead(); return refresh(true); };
  let frame = null;
  viewport.addEventListener("scroll", () => {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = null; refresh(false); });
  });

  const stateFilter = el("select", {
    id: "state-filter",
    onchange: (e) => { table.state = e.target.value; reload(); },
  }, el("option", { value: "" }, "all states"), STATES.map((s) => el("option", { value: s }, s)));
  const rangeKey = el("select", { id: "range-key" },
    el("option", { value: "value" }, multi ? "value 0" : study.objectives[0].metric),
    params.map((p) => el("option", { value: `param:${p}` }, p)));
  const low = el("input", { id: "range-low", placeholder: "from", size: "7" });
  const high = el("input", { id: "range-high", placeholder: "to", size: "7" });
  const applyRange = () => {
    const [lo, hi] = [low.value.trim(), high.value.trim()];
    table.range = lo || hi ? `${rangeKey.value}:${lo}:${hi}` : "";
    reload();
  };
  const chooser = el("details", { class: "chooser" }, el("summary", {}, "columns"),
    all.map(([key, label]) => el("label", {}, el("input", {
      type: "checkbox",
      "data-column": key,
      ...(shown.has(key) ? { checked: "" } : {}),
      onchange: (e) => {
        if (e.target.checked) shown.add(key); else shown.delete(key);
        localStorage.setItem(`hyperion.columns.${name}`, JSON.stringify([...shown]));
        renderHead();
        refresh(true);
      },
    }), " ", label)));
  const toolbar = el("div", { class: "toolbar" }, stateFilter, rangeKey, low, high,
    el("button", { id: "range-apply", onclick: applyRange }, "filter"),
    chooser, el("span", { class: "spacer" }), pager);
  renderHead();
  return { node: el("div", {}, toolbar, viewport), refresh };
}

// --- the study page -------------------------------------------------------------------------

async function studyPage(name) {
  const path = `studies/${encodeURIComponent(name)}`;
  crumbs.replaceChildren(" / ", el("a", { href: `#/s/${encodeURIComponent(name)}` }, name));
  const study = await api(path);
  const counts = { ...study.counts };
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

  const params = study.params.filter((p) => p.distribution.type !== "constant").map((p) => p.name);
  const options = { objective: 0, x: params[0], y: params[1] };
  const url = `api/v1/${path}/plots`;
  const objectiveQuery = () => ({ objective: options.objective });
  const brushes = {};
  const brushStatus = el("span", { id: "parallel-selected", class: "note" });
  const plots = {
    history: plotBox(url, "history", objectiveQuery),
    importance: plotBox(url, "importance", objectiveQuery),
    parallel: plotBox(url, "parallel", objectiveQuery, (svg) => brushable(svg, brushes, brushStatus)),
    slice: plotBox(url, "slice", objectiveQuery),
    contour: plotBox(url, "contour", () => ({ objective: options.objective, x: options.x, y: options.y })),
    intermediate: plotBox(url, "intermediate"),
    pareto: plotBox(url, "pareto"),
    timeline: plotBox(url, "timeline"),
  };
  const applies = {
    importance: params.length > 0, parallel: params.length > 0, slice: params.length > 0,
    contour: params.length > 1, pareto: study.objectives.length > 1,
  };
  const active = Object.keys(plots).filter((k) => applies[k] !== false);
  const redraw = (kinds) => Promise.all(kinds.filter((k) => active.includes(k)).map((k) => plots[k].refresh()));

  const select = (id, values, current, onchange) => el("select", { id, onchange },
    values.map(([value, label]) => el("option", { value, ...(String(value) === String(current) ? { selected: "" } : {}) }, label)));
  const objectivePicker = study.objectives.length > 1
    ? select("objective", study.objectives.map((o, i) => [i, `${o.metric} (${o.direction})`]), 0, (e) => {
      options.objective = Number(e.target.value);
      redraw(["history", "importance", "parallel", "slice", "contour"]).catch(showError);
    })
    : null;
  const axisPicker = (id, key) => select(id, params.map((p) => [p, p]), options[key], (e) => {
    options[key] = e.target.value;
    plots.contour.refresh().catch(showError);
  });
  const section = (kind, title, ...tools) => (active.includes(kind)
    ? el("section", { class: "panel" }, el("div", { class: "toolbar" }, el("h2", {}, title), ...tools), plots[kind].box)
    : null);
  const trials = trialTable(path, name, study);

  page(
    el("h1", {}, name),
    el("div", { class: "toolbar" }, countsBar(counts), el("span", { class: "spacer" }),
      el("a", { href: `#/compare/${encodeURIComponent(name)}` }, "compare…"),
      button("Stop", false), button("Kill", true), stopped),
    objectivePicker ? el("div", { class: "toolbar" }, "objective ", objectivePicker) : null,
    section("history", "Optimization history"),
    el("div", { class: "two" },
      section("importance", "Parameter importance"),
      section("pareto", "Pareto front")),
    section("parallel", "Parallel coordinates", brushStatus,
      el("span", { class: "note" }, "drag along an axis to select, click it to clear")),
    section("slice", "Slices"),
    section("contour", "Contour", axisPicker("contour-x", "x"), "×", axisPicker("contour-y", "y")),
    section("intermediate", "Intermediate values"),
    section("timeline", "Timeline"),
    el("section", {}, el("h2", {}, "Trials"), trials.node));
  await Promise.all([redraw(active), trials.refresh()]);
  clearError();

  // Live: each change updates the counts at once; the history and the visible rows are read
  // again within a quarter of a second, the other plots within a second, whatever the rate of
  // changes.
  const timers = {};
  const later = (key, ms, work) => {
    if (timers[key]) return;
    timers[key] = setTimeout(() => { timers[key] = null; work().catch(showError); }, ms);
  };
  const schedule = () => {
    later("fast", 250, () => Promise.all([redraw(["history"]), trials.refresh()]));
    later("slow", 1000, () => redraw(active.filter((k) => k !== "history")));
  };
  const renderCounts = () => {
    for (const key of ["total"].concat(STATES)) {
      const node = document.getElementById(`count-${key}`);
      if (node) node.textContent = String(counts[key]);
    }
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
      case "trial_finished":
        move("running", stateOf(change));
        break;
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
  let resizing = null;
  const resize = () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => redraw(active).catch(showError), 200);
  };
  window.addEventListener("resize", resize);
  return () => {
    events.close();
    liveBadge.hidden = true;
    Object.values(timers).forEach(clearTimeout);
    clearTimeout(resizing);
    window.removeEventListener("resize", resize);
  };
}

// --- comparing studies ----------------------------------------------------------------------

async function comparePage(names) {
  crumbs.replaceChildren(" / compare ", names.join(", "));
  const q = () => {
    const query = new URLSearchParams(names.map((n) => ["study", n]));
    return query;
  };
  const box = el("div", { class: "plot-box", id: "plot-compare" });
  const tbody = el("tbody");
  const render = async () => {
    const data = await api(`compare?${q()}`);
    tbody.replaceChildren(...data.studies.map((s) => el("tr", { "data-study": s.name },
      el("td", {}, el("a", { href: `#/s/${encodeURIComponent(s.name)}` }, s.name)),
      el("td", {}, `${s.objective.metric} (${s.objective.direction})`),
      el("td", { class: "num" }, String(s.trials)),
      el("td", { class: "num" }, String(s.completed)),
      el("td", { class: "num best" }, s.best ? fmt(s.best.values[0]) : ""),
      el("td", { class: "num" }, s.best ? `#${s.best.number}` : ""))));
    const width = Math.max(320, Math.round(box.clientWidth || 900));
    const query = q();
    query.set("format", "svg");
    query.set("width", width);
    const response = await fetch(`api/v1/compare?${query}`);
    box.innerHTML = await response.text();
  };
  const others = (await api("studies")).map((s) => s.name).filter((n) => !names.includes(n));
  const add = el("select", {
    id: "compare-add",
    onchange: (e) => { if (e.target.value) location.hash = "#/compare/" + names.concat([e.target.value]).map(encodeURIComponent).join("/"); },
  }, el("option", { value: "" }, "add a study…"), others.map((n) => el("option", { value: n }, n)));
  page(el("h1", {}, "Compare studies"),
    el("div", { class: "toolbar" }, add),
    el("section", { class: "panel" }, el("h2", {}, "Best value so far"), box),
    el("section", {}, el("h2", {}, "Best values"), el("table", { id: "compare-table" },
      el("thead", {}, el("tr", {}, ["study", "objective", "trials", "completed", "best", "best trial"].map((h) => el("th", {}, h)))),
      tbody)));
  await render();
  clearError();
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") render().catch(showError);
  }, 5000);
  return () => clearInterval(timer);
}

// --- the trial page -------------------------------------------------------------------------

// One trial's learning curve, as an SVG line with its range.
function curveChart(steps, values) {
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };
  const [width, height, left, top, bottom] = [800, 240, 64, 14, 28];
  const svg = make("svg", { class: "plot", id: "curve-chart", viewBox: `0 0 ${width} ${height}`, width, height });
  const finite = values.filter(Number.isFinite);
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (lo === hi) { lo -= 1; hi += 1; }
  const s0 = Math.min(...steps), s1 = Math.max(...steps, s0 + 1);
  const px = (x) => left + ((x - s0) / (s1 - s0)) * (width - left - 10);
  const py = (y) => top + (1 - (y - lo) / (hi - lo)) * (height - top - bottom);
  svg.append(make("path", { class: "axis", d: `M${left},${top}V${height - bottom}H${width - 10}` }));
  const points = steps.map((x, i) => `${px(x).toFixed(1)},${py(values[i]).toFixed(1)}`).join(" ");
  svg.append(make("polyline", { class: "curve", points }));
  for (const [x, y, anchor, text] of [[left - 6, top + 8, "end", fmt(hi)], [left - 6, height - bottom, "end", fmt(lo)],
    [left, height - 8, "start", `step ${s0}`], [width - 10, height - 8, "end", `step ${s1}`]]) {
    const label = make("text", { x, y, "text-anchor": anchor });
    label.textContent = text;
    svg.append(label);
  }
  svg.dataset.points = String(steps.length);
  return svg;
}

async function trialPage(name, number) {
  const path = `studies/${encodeURIComponent(name)}`;
  crumbs.replaceChildren(" / ", el("a", { href: `#/s/${encodeURIComponent(name)}` }, name), ` / trial ${number}`);
  const t = await api(`${path}/trials/${number}`);
  const rows = (pairs) => el("table", { class: "kv" }, el("tbody", {},
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, fmt(v))))));
  const steps = Object.keys(t.intermediate || {}).map(Number);
  // PBT lineage: the trials this one continues, nearest first.
  const lineage = [];
  for (let parent = t.parent; parent !== null && parent !== undefined && lineage.length < 20;) {
    lineage.push(parent);
    parent = (await api(`${path}/trials/${parent}`)).parent;
  }
  const link = (n) => el("a", { href: `#/s/${encodeURIComponent(name)}/t/${n}` }, `#${n}`);
  page(
    el("h1", {}, `Trial ${t.number}`, " ", el("span", { class: `state-${t.state}`, id: "trial-state" }, t.phase || t.state)),
    el("section", {}, el("h2", {}, "Result"), rows([
      ["values", t.values ? t.values.map(fmt).join(", ") : null],
      ["error", t.error], ["pruned", t.reason], ["at step", t.step],
      ["stop requested", t.stop_reason],
      ["started", t.datetime_start], ["finished", t.datetime_complete],
      ["duration", t.duration_s === null ? null : `${t.duration_s.toFixed(2)} s`],
      ["host", t.host], ["directory", t.directory], ["retries trial", t.retry_of]])),
    lineage.length ? el("section", {}, el("h2", {}, "Lineage"), el("p", { id: "lineage" },
      "continues ", lineage.flatMap((n, i) => (i ? [" ← ", link(n)] : [link(n)])))) : null,
    t.stages ? el("section", {}, el("h2", {}, "Stages"), el("table", { id: "stages" },
      el("thead", {}, el("tr", {}, ["stage", "status", "key"].map((h) => el("th", {}, h)))),
      el("tbody", {}, t.stages.map((s) => el("tr", {}, el("td", {}, s.stage),
        el("td", {}, s.status.replace("_", " ") + (s.cached ? " (cached)" : "")), el("td", {}, s.key || "not cached")))))) : null,
    el("section", {}, el("h2", {}, "Parameters"), el("div", { id: "trial-params" }, rows(Object.entries(t.params)))),
    Object.keys(t.metrics || {}).length ? el("section", {}, el("h2", {}, "Metrics"), rows(Object.entries(t.metrics))) : null,
    steps.length ? el("section", {}, el("h2", {}, "Learning curve"),
      curveChart(steps, steps.map((s) => t.intermediate[s]))) : null,
    t.decisions && t.decisions.length ? el("section", {}, el("h2", {}, "Decisions"),
      el("table", { id: "decisions" }, el("thead", {}, el("tr", {}, ["policy", "action", "rationale"].map((h) => el("th", {}, h)))),
        el("tbody", {}, t.decisions.map((d) => el("tr", {}, el("td", {}, d.policy),
          el("td", {}, String(d.action)), el("td", {}, d.rationale)))))) : null,
    t.stderr_tail ? el("section", {}, el("h2", {}, "Last lines of stderr"), el("pre", { id: "stderr" }, t.stderr_tail)) : null);
  clearError();
  return () => {};
}

// --- routing --------------------------------------------------------------------------------

async function route() {
  leave();
  leave = () => {};
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "compare") leave = await comparePage(parts.slice(1).filter(Boolean));
    else if (parts[0] === "s" && parts.length >= 4 && parts[2] === "t") leave = await trialPage(parts[1], parts[3]);
    else if (parts[0] === "s" && parts[1]) leave = await studyPage(parts[1]);
    else leave = await listPage();
    // When the page has drawn what it shows (for tests and the paint benchmark).
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = location.hash || "#/";
  } catch (e) {
    showError(e);
    document.body.dataset.ready = "error";
  }
}

window.addEventListener("hashchange", route);
route();
