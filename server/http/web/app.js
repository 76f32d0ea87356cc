// Lifeboat's admin page: plain JS, no build step. Every piece of data reaches the DOM
// through textContent or attributes set by el(); nothing is parsed as HTML.

const TOKEN_KEY = "lifeboat.adminToken";

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem(TOKEN_KEY) ?? "";
/** Jobs by id, as the live stream last sent them. */
const jobs = new Map();
/** The job shown in the detail panel, and the id of the last event shown there. */
let detail = null;
/** Aborts the live stream's connection. */
let live = null;

/** Makes an element: attributes (on* are listeners, not strings) and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the admin API with the token; a 401 sends the user back to the token box. */
async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const isJson = (res.headers.get("content-type") ?? "").includes("json");
  const data = isJson ? await res.json() : await res.text();
  if (res.status === 401) {
    showLogin("The server refused this token: paste the current one.");
    throw new ApiError(401, "the admin token was refused");
  }
  if (!res.ok) throw new ApiError(res.status, (isJson && data.message) || `${res.status} ${res.statusText}`);
  return data;
}

// ---------- formatting ----------

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log2(n) / 10));
  return `${(n / 2 ** (10 * i)).toFixed(i ? 1 : 0)} ${units[i]}`;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return s < 5 ? "just now" : `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** A time shown relative, with the exact local time on hover. */
const time = (iso) => el("time", { class: "ago", datetime: iso ?? undefined, title: iso ? new Date(iso).toLocaleString() : undefined }, ago(iso));
const code = (text) => el("code", {}, text);
const stateBadge = (state) => el("span", { class: `state state-${state}` }, state);

// ---------- token ----------

function showLogin(message) {
  live?.abort();
  live = null;
  $("app").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

async function openWithToken() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("forget").hidden = false;
  connectLive();
  try {
    await loadLists();
  } catch (err) {
    // A refused token is back at the token box already; anything else is shown.
    if (err.status !== 401) $("arm-error").textContent = `Cannot load the lists: ${err.message}`;
  }
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  try {
    await api("GET", "/api/v1/profiles");
  } catch (err) {
    if (err.status !== 401) $("login-error").textContent = `Cannot reach the server: ${err.message}`;
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  await openWithToken();
});

$("forget").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  token = "";
  showLogin();
});

// ---------- hosts, profiles, assignments ----------

function fillTable(tableId, rows, emptyId) {
  $(tableId).tBodies[0].replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
  $(tableId).hidden = rows.length === 0;
}

/**
 * The clone window, while open, as a banner with its limits: until it closes, unknown machines
 * that network-boot are wiped into clones, which nobody should have to remember.
 */
function showCloneWindow(w) {
  const banner = $("clone-window");
  banner.hidden = !w.open;
  if (!w.open) return;
  banner.dataset.until = w.until;
  const who = w.only.length ? `an unknown machine under ${w.only.join(", ")}` : "any unknown machine";
  banner.replaceChildren(
    "Clone window open until ",
    el("time", { datetime: w.until }, new Date(w.until).toLocaleString()),
    `: ${who} that network-boots becomes a clone of ${w.profile} (${w.armed} so far). Close it with `,
    code("lifeboat jobs window --close"),
    ".",
  );
}

async function loadCloneWindow() {
  showCloneWindow(await api("GET", "/api/v1/clone-window"));
}

/** Can the host be recovered right now (jobs/recoverability.ts): yes, or each reason it cannot, one a line. */
function recoverableCell(r) {
  if (r.recoverable) return el("span", { class: "ok" }, "yes");
  return [el("strong", { class: "error" }, "NO"), el("ul", { class: "reasons" }, ...r.reasons.map((x) => el("li", {}, x)))];
}

/** The host's last drill: passed or failed, when, and its time to recover. */
function drillCell(d) {
  if (!d) return el("span", { class: "muted" }, "never");
  return [
    d.passed ? "passed " : el("strong", { class: "error" }, "FAILED "),
    time(d.endedAt),
    d.passed && d.recoverSeconds !== null ? ` (${Math.round(d.recoverSeconds)} s to recover, ${d.accel})` : "",
    d.passed ? "" : el("div", { class: "error" }, d.reason ?? ""),
  ];
}

async function loadLists() {
  const [hosts, profiles, assignments, bundles] = await Promise.all([api("GET", "/api/v1/hosts"), api("GET", "/api/v1/profiles"), api("GET", "/api/v1/assignments"), api("GET", "/api/v1/bundles"), loadCloneWindow()]);
  // Each bundle target's last success and failure: a failure is shown, not left to a log line.
  $("bundles-schedule").textContent = `Written every ${bundles.everyHours} h, the newest ${bundles.keep} kept per server; last run ${bundles.lastRun ? new Date(bundles.lastRun).toLocaleString() : "never"}.${bundles.received.length ? ` ${bundles.received.length} received from other servers.` : ""}`;
  fillTable(
    "bundles",
    bundles.targets.map((t) =>
      el(
        "tr",
        { "data-target": t.name },
        el("td", {}, t.name),
        el("td", {}, t.type),
        el("td", {}, code(t.where)),
        el("td", {}, t.ok === null ? el("span", { class: "muted" }, "not yet") : t.ok ? "ok" : el("strong", { class: "error" }, "FAILED")),
        el("td", {}, t.lastSuccess ? time(t.lastSuccess.at) : el("span", { class: "muted" }, "never")),
        el("td", {}, t.lastFailure ? [time(t.lastFailure.at), " ", el("span", { class: t.ok ? "muted" : "error" }, t.lastFailure.error)] : ""),
      ),
    ),
    "bundles-empty",
  );
  fillTable(
    "hosts",
    hosts.map((h) =>
      el(
        "tr",
        { "data-host": h.name },
        el("td", {}, h.name),
        el("td", {}, h.macs.map((m) => code(m))),
        el("td", {}, h.lastCapture ? time(h.lastCapture) : el("span", { class: "muted" }, "never (run capture.sh on it)")),
        el("td", { class: "num" }, h.layouts),
        el("td", {}, h.amandaConfig ?? ""),
        el("td", { class: "recoverable" }, recoverableCell(h.recoverability)),
        el("td", { class: "drill" }, drillCell(h.recoverability.lastDrill)),
        el(
          "td",
          {},
          h.macs.length ? el("button", { type: "button", class: "quiet", onclick: () => prefillArm(h.macs[0], "") }, "Recover…") : "",
          el("button", { type: "button", class: "quiet", title: "Its power state, and on, off or cycle through its BMC (hosts power-config)", onclick: () => askPower(h.name) }, "Power…"),
        ),
      ),
    ),
    "hosts-empty",
  );
  fillTable(
    "profiles",
    profiles.map((p) =>
      el(
        "tr",
        { "data-profile": p.name },
        el("td", {}, p.name),
        el("td", {}, p.host),
        el("td", {}, p.layoutVersion ? `version ${p.layoutVersion}` : "latest"),
        el("td", {}, p.at ?? "newest"),
        el("td", {}, profileOptions(p.options)),
      ),
    ),
    "profiles-empty",
  );
  fillTable(
    "assignments",
    assignments.map((a) => el("tr", {}, el("td", {}, code(a.mac)), el("td", {}, a.profile), el("td", {}, time(a.createdAt)))),
    "assignments-empty",
  );
  const select = $("arm-profile");
  const chosen = select.value;
  select.replaceChildren(select.options[0], ...profiles.map((p) => el("option", { value: p.name }, p.name)));
  select.value = profiles.some((p) => p.name === chosen) ? chosen : "";
  $("known-macs").replaceChildren(
    ...hosts.flatMap((h) => h.macs.map((m) => el("option", { value: m }, h.name))),
    ...assignments.map((a) => el("option", { value: a.mac }, `→ ${a.profile}`)),
  );
}

/** A stored disk mapping: each captured disk → the target's identity (plan/disks.ts), or null: left out. */
function mappingText(m) {
  const target = (id) => (id === null ? "left out" : [id.name, id.serial && `serial ${id.serial}`, id.wwn && `wwn ${id.wwn}`, !id.serial && !id.wwn && id.byId?.[0]].filter(Boolean).join(" "));
  return Object.entries(m ?? {}).map(([a, b]) => `${a}→${target(b)}`).join(", ");
}

function profileOptions(o = {}) {
  const parts = [];
  if (o.hostnamePattern) parts.push(`hostname ${o.hostnamePattern}`);
  if (o.migration) parts.push(`migration ${o.migration}`);
  if (o.bootloader) parts.push(`boot loader ${o.bootloader}`);
  if (o.mapping && Object.keys(o.mapping).length) parts.push(`disk map ${mappingText(o.mapping)}`);
  if (o.includeRemovable) parts.push("removable/USB disks included");
  if (o.newUuids) parts.push("new UUIDs");
  if (o.grow) parts.push(`${o.grow} grows`);
  return parts.join("; ");
}

$("reload").addEventListener("click", () => loadLists().catch(showError("arm-error")));

const showError = (id) => (err) => {
  $(id).textContent = err.message;
};

// ---------- jobs ----------

/** A progress bar; its width is set through the CSSOM, as the page's content policy refuses style attributes. */
function progressBar(pct) {
  const fill = el("div", { class: "fill" });
  fill.style.width = `${pct ?? 0}%`;
  return el("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct ?? undefined, title: pct === null ? undefined : `${pct}%` }, fill);
}

function progressCell(j) {
  const pct = j.bytesTotal > 0 ? Math.min(100, Math.floor((j.bytesDone / j.bytesTotal) * 100)) : j.state === "done" ? 100 : 0;
  const started = j.steps > 0 || j.bytesTotal > 0;
  return el(
    "td",
    { class: "progress-col" },
    el("div", { class: "step" }, j.steps > 0 ? `step ${j.step} of ${j.steps}` : j.state === "armed" ? "waiting for the machine to boot" : ""),
    started ? progressBar(pct) : null,
    el("div", { class: "bytes" }, j.bytesTotal > 0 ? `${bytes(j.bytesDone)} of ${bytes(j.bytesTotal)} (${pct}%)` : ""),
  );
}

function jobRow(j) {
  const active = j.active;
  return el(
    "tr",
    { "data-job": j.id, "data-state": j.state, class: active ? "" : "finished" },
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => openDetail(j.id) }, j.id), el("div", { class: "muted" }, time(j.createdAt))),
    el("td", {}, code(j.mac), j.hostname ? el("div", { class: "muted" }, j.hostname) : null),
    el("td", {}, j.kind),
    el("td", {}, j.profile, j.at ? el("div", { class: "muted" }, `at ${j.at}`) : null),
    el("td", {}, stateBadge(j.state), j.error ? el("div", { class: "error job-error" }, j.error) : null),
    progressCell(j),
    el("td", { class: "remote" }, j.ssh ? code(j.ssh) : j.ip ? code(j.ip) : ""),
    el("td", { class: "server" }, j.server ?? ""),
    el(
      "td",
      { class: "actions" },
      el("button", { type: "button", class: "quiet", onclick: () => openDetail(j.id) }, "Log"),
      active && j.kind !== "drill" ? el("button", { type: "button", class: "quiet", title: "A one-time code for a machine booted from an ISO or USB stick", onclick: () => showCode(j.id) }, "Code") : null,
      active ? el("button", { type: "button", class: "quiet danger", onclick: () => askCancel(j.id) }, "Cancel") : null,
    ),
  );
}

/** Puts a job's row in place (newest first), replacing the old one. */
function upsertJob(j) {
  // A reply and the live stream can bring the same change in either order: keep the newest.
  if (jobs.get(j.id)?.updatedAt > j.updatedAt) return;
  jobs.set(j.id, j);
  const body = $("jobs").tBodies[0];
  const row = jobRow(j);
  const old = body.querySelector(`tr[data-job="${CSS.escape(j.id)}"]`);
  if (old) old.replaceWith(row);
  else {
    const after = [...body.rows].find((r) => jobs.get(r.dataset.job).createdAt < j.createdAt);
    body.insertBefore(row, after ?? null);
  }
  $("jobs-empty").hidden = jobs.size > 0;
  if (detail?.id === j.id) renderDetailFields(j);
}

$("show-finished").addEventListener("change", (e) => $("jobs").classList.toggle("hide-finished", !e.target.checked));

function setLive(on, text) {
  $("live").textContent = text;
  $("live").classList.toggle("on", on);
}

/**
 * The live stream (server-sent events): every job change, as `event: job` with {job, event}.
 * Read with fetch rather than EventSource, so the token goes in the Authorization header
 * and never into a URL (URLs end up in logs). Reconnects after a pause when cut.
 */
function connectLive() {
  live?.abort();
  const ctl = new AbortController();
  live = ctl;
  (async () => {
    while (!ctl.signal.aborted) {
      setLive(false, "connecting…");
      try {
        await readLive(ctl.signal);
      } catch (err) {
        if (ctl.signal.aborted || err.status === 401) return;
      }
      setLive(false, "reconnecting…");
      await new Promise((r) => setTimeout(r, 3000));
    }
  })();
}

async function readLive(signal) {
  const res = await fetch("/api/v1/live", { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, signal });
  if (res.status === 401) {
    showLogin("The server refused this token: paste the current one.");
    throw new ApiError(401, "the admin token was refused");
  }
  if (!res.ok) throw new ApiError(res.status, res.statusText);
  setLive(true, "live");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      onLiveMessage(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

/** One server-sent event: `event:` and `data:` lines; comments (pings) start with ":". */
function onLiveMessage(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (type !== "job" || !data.length) return;
  const { job, event } = JSON.parse(data.join("\n"));
  upsertJob(job);
  // A clone the window armed: its count on the banner moves on.
  if (job.armedBy === "clone-window" && event?.type === "armed") loadCloneWindow().catch(showError("arm-error"));
  if (detail?.id !== job.id || !event) return;
  // Byte counts come as a transient event (id 0, not in the history); the rest is fetched from it.
  if (event.type === "stream") showStream(event.data);
  else loadDetailEvents().catch(showError("arm-error"));
}

// ---------- arm ----------

// ---------- power ----------

let powerHost = null;

/** Opens the power dialog for a host: its BMC is asked for the state at once. */
function askPower(host) {
  powerHost = host;
  $("power-title").textContent = `Power of ${host}`;
  $("power-summary").textContent = "asking its BMC…";
  $("power-dialog-error").textContent = "";
  $("power-dialog").showModal();
  $("power-back").focus();
  powerAction("status");
}

/** A power action on the dialog's host; the BMC's answer (or the one-line error) is shown. */
async function powerAction(action) {
  const buttons = ["power-on", "power-off", "power-cycle"].map($);
  for (const b of buttons) b.disabled = true;
  $("power-dialog-error").textContent = "";
  try {
    const r = await api("POST", `/api/v1/hosts/${encodeURIComponent(powerHost)}/power`, { action });
    $("power-summary").textContent = `${r.host}: ${r.action === "status" ? "" : `${r.action} done; `}${r.target} says ${r.state}`;
  } catch (err) {
    $("power-summary").textContent = "";
    $("power-dialog-error").textContent = err.message;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

$("power-back").addEventListener("click", () => $("power-dialog").close());
for (const action of ["on", "off", "cycle"]) $(`power-${action}`).addEventListener("click", () => powerAction(action));

function prefillArm(mac, profile) {
  $("arm-mac").value = mac;
  $("arm-profile").value = profile;
  $("arm-mac").scrollIntoView({ block: "center" });
  $("arm-mac").focus();
}

let pendingArm = null;

$("arm-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("arm-error").textContent = "";
  // Several MACs (clones of one profile) arm one job each, all or none.
  const macs = $("arm-mac").value.split(/[\s,;]+/).filter(Boolean);
  const body = macs.length > 1 ? { macs, kind: $("arm-kind").value } : { mac: macs[0] ?? "", kind: $("arm-kind").value };
  if ($("arm-profile").value) body.profile = $("arm-profile").value;
  if ($("arm-at").value.trim()) body.at = $("arm-at").value.trim();
  if ($("arm-power").checked) body.power = { force: $("arm-force").checked };
  let plan = null;
  let refusal = null;
  try {
    plan = await api("POST", "/api/v1/plan-preview", body);
  } catch (err) {
    if (err.status !== 409) return showError("arm-error")(err);
    refusal = err.message;
  }
  pendingArm = body;
  $("arm-summary").replaceChildren(
    body.macs ? `Arm ${body.macs.length} ${body.kind} jobs, for ` : `Arm a ${body.kind} job for `,
    ...(body.macs ?? [body.mac]).flatMap((m, i) => (i ? [", ", code(m)] : [code(m)])),
    body.profile ? ` with profile ${body.profile}` : " with its assigned profile (or its host's own)",
    body.at ? `, restore point ${body.at}` : ", newest restore point",
    body.power ? (body.power.force ? ", then power it through its BMC (off and on again if it is on)" : ", then power it on through its BMC (refused if it is on)") : "",
    body.macs
      ? ". The next time each of these machines boots from the network, it runs this plan (shown for the first; the others differ in their hostname) and its disks are overwritten."
      : ". The next time that machine boots from the network, it runs this plan and its disks are overwritten.",
  );
  $("arm-note").textContent = refusal
    ? `No plan yet: ${refusal}. The plan is built again from the disks the machine reports when it boots, and refused before anything is touched.`
    : "The plan, as a dry run against the disks captured from the host (the real one is built from the disks the machine reports when it boots):";
  $("arm-plan").textContent = plan ?? "";
  $("arm-plan").hidden = plan === null;
  $("arm-confirm").textContent = refusal ? "Arm anyway" : "Arm";
  $("arm-dialog-error").textContent = "";
  $("arm-dialog").showModal();
  $("arm-back").focus();
});

$("arm-back").addEventListener("click", () => $("arm-dialog").close());
$("arm-confirm").addEventListener("click", async () => {
  try {
    const armed = await api("POST", "/api/v1/jobs", pendingArm);
    for (const j of armed) upsertJob(j);
    $("arm-dialog").close();
    $("arm-form").reset();
    loadLists().catch(showError("arm-error"));
  } catch (err) {
    $("arm-dialog-error").textContent = err.message;
  }
});

// ---------- cancel ----------

let pendingCancel = null;

function askCancel(id) {
  const j = jobs.get(id);
  pendingCancel = id;
  $("cancel-summary").replaceChildren(
    `Cancel ${j.kind} job ${j.id} for `,
    code(j.mac),
    ` (${j.state}${j.steps ? `, step ${j.step} of ${j.steps}` : ""})?`,
    j.state === "running" ? " A step already under way on the machine is not undone." : "",
  );
  $("cancel-dialog-error").textContent = "";
  $("cancel-dialog").showModal();
  $("cancel-back").focus();
}

$("cancel-back").addEventListener("click", () => $("cancel-dialog").close());
$("cancel-confirm").addEventListener("click", async () => {
  try {
    upsertJob(await api("POST", `/api/v1/jobs/${encodeURIComponent(pendingCancel)}/cancel`));
    $("cancel-dialog").close();
  } catch (err) {
    $("cancel-dialog-error").textContent = err.message;
  }
});

// ---------- one-time code (a machine booted from lifeboat image iso) ----------

async function showCode(id) {
  const j = jobs.get(id);
  $("code-summary").replaceChildren(`Job ${j.id} for `, code(j.mac), ":");
  $("code-value").textContent = "";
  $("code-expires").textContent = "";
  $("code-dialog-error").textContent = "";
  $("code-dialog").showModal();
  $("code-close").focus();
  try {
    const c = await api("POST", `/api/v1/jobs/${encodeURIComponent(id)}/code`, {});
    $("code-value").textContent = c.code;
    $("code-expires").textContent = `Valid once, until ${new Date(c.expiresAt).toLocaleString()}. A new code ends this one.`;
  } catch (err) {
    $("code-dialog-error").textContent = err.message;
  }
}

$("code-close").addEventListener("click", () => $("code-dialog").close());

// ---------- job detail ----------

function renderDetailFields(j) {
  $("detail-id").textContent = j.id;
  const rows = [
    ["State", stateBadge(j.state)],
    ["Machine", [code(j.mac), j.hostname ? ` → ${j.hostname}` : ""]],
    ["Kind, profile", `${j.kind}, ${j.profile}`],
    ["Restore point", j.at ?? "newest"],
    ["Progress", j.steps ? `step ${j.step} of ${j.steps}, ${bytes(j.bytesDone)} of ${bytes(j.bytesTotal)}` : "not started"],
    ["Armed", [time(j.createdAt), ` by ${j.armedBy}`]],
    ["Expires", j.state === "armed" ? time(j.expiresAt) : "—"],
    ["Last heard from", time(j.lastHeartbeatAt)],
    ["Remote help", j.ssh ? code(j.ssh) : j.ip ? code(j.ip) : "—"],
    ["Served by", j.server ? `server ${j.server}` : "— (not booted yet)"],
    ["Disks seen", j.disks?.length ? j.disks.map((d) => `${d.name} ${bytes(d.sizeBytes)}${d.serial ? ` (${d.serial})` : ""}${d.removable || d.bus === "usb" ? " removable/USB" : ""}`).join(", ") : "—"],
    ["Disk mapping", j.mapping && Object.keys(j.mapping).length ? mappingText(j.mapping) : "—"],
  ];
  if (j.error) rows.push(["Error", el("span", { class: "error" }, j.error)]);
  $("detail-fields").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

/** One line saying what an event of the job's history means. */
function eventText(ev) {
  const d = ev.data ?? {};
  switch (ev.type) {
    case "armed":
      return `by ${d.by}: ${d.kind} with profile ${d.profile}, layout version ${d.layoutVersion}, restore point ${d.at ?? "newest"}`;
    case "boot":
      // Boots recorded before the boot policy named no requester.
      return `network boot: the rescue system was sent${d.requester ? ` to ${d.requester} (${d.basis})` : ""} with a fresh boot token`;
    case "boot-refused":
      return `network boot from ${d.requester}: no token: ${d.reason}`;
    case "key-served":
      return `LUKS key ${d.uuid} served to ${d.requester}`;
    case "key-refused":
      return `LUKS key ${d.uuid} refused to ${d.requester}: ${d.reason}`;
    case "booted":
      return "the agent reported its disks";
    case "plan":
      return `plan served: ${d.steps} steps, ${bytes(d.bytesTotal)} to restore`;
    case "plan-refused":
      return d.reason;
    case "step-start":
      return `step ${d.step} of ${d.of}: ${d.name}`;
    case "step-end":
      return `step ${d.step} of ${d.of}: ${d.name} ${d.skipped ? "skipped (already done)" : `exit ${d.exitStatus}`}`;
    case "stream-done":
      return `dump ${d.dumpId}: ${bytes(d.bytes)}`;
    case "log":
      return d.message;
    case "failed":
      return `${d.step ? `step ${d.step}: ` : ""}${d.error}`;
    case "cancelled":
      return `by ${d.by} (was ${d.from})`;
    case "done":
      return d.reason ?? "the agent reported the recovery finished";
    case "mapped":
      return `by ${d.by}: ${Object.entries(d.mapping ?? {}).map(([a, b]) => `${a}→${b}`).join(", ")}`;
    case "agent-log":
      return "the agent's log (below)";
    case "stalled":
      return `the agent is silent since ${new Date(d.silentSince).toLocaleString()}`;
    case "resumed":
      return `the agent spoke again (${d.by})`;
    default:
      return Object.keys(d).length ? JSON.stringify(d) : "";
  }
}

/** One dump stream's progress in the open job, like a download manager: a bar per dump. */
function showStream({ dumpId, bytes: got, totalBytes }) {
  const pct = totalBytes ? Math.min(100, Math.floor((got / totalBytes) * 100)) : null;
  const row = el(
    "tr",
    { "data-dump": dumpId },
    el("td", {}, code(dumpId)),
    el(
      "td",
      { class: "progress-col" },
      progressBar(pct),
      el("div", { class: "bytes" }, totalBytes ? `${bytes(got)} of ${bytes(totalBytes)} (${pct}%)` : bytes(got)),
    ),
  );
  const body = $("detail-streams").tBodies[0];
  const old = body.querySelector(`tr[data-dump="${CSS.escape(dumpId)}"]`);
  if (old) old.replaceWith(row);
  else body.append(row);
  $("detail-streams-box").hidden = false;
}

/** Fetches the open job's new events; one fetch at a time, so none is shown twice. */
function loadDetailEvents() {
  const d = detail;
  d.loading = d.loading.catch(() => {}).then(() => fetchDetailEvents(d));
  return d.loading;
}

async function fetchDetailEvents(d) {
  if (detail !== d) return;
  const id = d.id;
  const events = await api("GET", `/api/v1/jobs/${encodeURIComponent(id)}/events${d.lastEvent ? `?after=${d.lastEvent}` : ""}`);
  if (detail !== d) return;
  for (const ev of events) {
    d.lastEvent = Math.max(d.lastEvent, ev.id);
    const output = ev.type === "step-end" && ev.data?.output ? el("pre", { class: "output" }, ev.data.output) : null;
    $("detail-events").tBodies[0].append(
      el("tr", { "data-event": ev.type, class: ev.type === "failed" || (ev.type === "step-end" && ev.data?.exitStatus) ? "bad" : "" }, el("td", {}, el("time", { datetime: ev.at }, new Date(ev.at).toLocaleTimeString())), el("td", {}, ev.type), el("td", {}, eventText(ev), output)),
    );
    if (ev.type === "agent-log") $("detail-log").textContent += ev.data?.text ?? "";
    if (ev.type === "stream-done") showStream(ev.data);
  }
  if (!$("detail-log").textContent) $("detail-log").textContent = "(the agent sends its whole log when it finishes or fails)";
}

async function openDetail(id) {
  detail = { id, lastEvent: 0, loading: Promise.resolve() };
  $("detail-events").tBodies[0].replaceChildren();
  $("detail-streams").tBodies[0].replaceChildren();
  $("detail-streams-box").hidden = true;
  $("detail-log").textContent = "";
  $("detail-plan-text").hidden = true;
  renderDetailFields(jobs.get(id));
  $("detail").hidden = false;
  $("detail").scrollIntoView({ block: "start" });
  try {
    await loadDetailEvents();
  } catch (err) {
    $("detail-log").textContent = err.message;
  }
}

$("detail-close").addEventListener("click", () => {
  detail = null;
  $("detail").hidden = true;
});

$("detail-plan").addEventListener("click", async () => {
  const pre = $("detail-plan-text");
  pre.hidden = false;
  try {
    pre.textContent = await api("GET", `/api/v1/jobs/${encodeURIComponent(detail.id)}/plan`);
  } catch (err) {
    pre.textContent = `No plan: ${err.message}`;
  }
});

// ---------- start ----------

fetch("/healthz")
  .then((r) => r.json())
  .then((h) => {
    $("version").textContent = `v${h.version}`;
  })
  .catch(() => {});

// Relative times ("3 min ago") move on by themselves.
setInterval(() => {
  for (const t of document.querySelectorAll("time.ago")) if (t.dateTime) t.textContent = ago(t.dateTime);
  const banner = $("clone-window");
  if (!banner.hidden && Date.parse(banner.dataset.until) <= Date.now()) banner.hidden = true;
}, 30_000);

if (token) openWithToken();
else showLogin();
