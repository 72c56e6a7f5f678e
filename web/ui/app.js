// The dcmstreams web UI: one page, no framework, no CDN. Pages are drawn
// from the JSON API (/api/v1/, docs/http.md) and redrawn when the live event
// feed (/api/v1/events) says something changed, so nothing polls.
"use strict";

const main = document.getElementById("main");
let me = { name: "", role: "viewer" };
let currentPage = null; // { name, refresh(event) }

// -- helpers -------------------------------------------------------------------

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Where a send goes: AE@host:port, or STOW-RS to host:port for a DICOMweb
// destination (which has no AE title).
function sendPeer(send) {
  const where = `${esc(send.host)}:${send.port}`;
  return send.called_ae ? `${esc(send.called_ae)}@${where}` : `STOW-RS to ${where}`;
}

function toast(message, isError) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.style.background = isError ? "#8d2a2a" : "#222";
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.error || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.body = typeof body === "string" ? body : JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch("/api/v1/" + path, options);
  const text = await response.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch (e) { json = { error: text }; }
  if (response.status === 401) {
    showLogin();
    throw new ApiError(401, json);
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function seconds(value) {
  if (value === null || value === undefined || isNaN(value)) return "–";
  if (value < 1) return (value * 1000).toFixed(0) + " ms";
  if (value < 120) return value.toFixed(1) + " s";
  return (value / 60).toFixed(1) + " min";
}

function duration(job) {
  if (!job.started) return "";
  const end = job.finished ? new Date(job.finished) : new Date();
  return seconds((end - new Date(job.started)) / 1000);
}

// A running job's time so far beside its stream's mean run time: "12.0 s of ~40.0 s".
function progress(job, meanByStream) {
  const mean = meanByStream[job.stream];
  if (job.state !== "running" || !mean) return duration(job);
  const elapsed = (new Date() - new Date(job.started)) / 1000;
  const left = mean - elapsed;
  return `${duration(job)} of ~${seconds(mean)}<br><span class="muted">${left > 0 ? "about " + seconds(left) + " left" : "longer than usual"}</span>`;
}

// Seconds until a pending study completes (its quiet period or maximum wait over).
function countdown(by) {
  const left = (new Date(by) - new Date()) / 1000;
  return left > 0 ? "in " + seconds(left) : "now";
}

function bytes(n) {
  if (n < 1024) return n + " B";
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(1) + " " + units[i];
}

function state(s) { return `<span class="state ${esc(s)}">${esc(s)}</span>`; }

// Each page shown gets a new serial; redraws of a page that is gone are dropped.
let pageSerial = 0;

function debounce(fn, ms) {
  const serial = pageSerial;
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (serial !== pageSerial) return;
      Promise.resolve(fn(...args)).catch((e) => { if (e.status !== 401) toast(e.message, true); });
    }, ms);
  };
}

const canChange = () => me.role === "admin";

async function act(label, promise, after) {
  try {
    await promise;
    toast(label);
    if (after) after();
  } catch (e) {
    toast(e.message, true);
  }
}

// -- login -----------------------------------------------------------------------

function showLogin() {
  const dialog = document.getElementById("login");
  if (!dialog.open) dialog.showModal();
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("login-name").value;
  const password = document.getElementById("login-password").value;
  const error = document.getElementById("login-error");
  const response = await fetch("/api/v1/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, password }),
  });
  if (!response.ok) {
    error.textContent = (await response.json()).error || "login failed";
    return;
  }
  error.textContent = "";
  document.getElementById("login").close();
  await start();
});

async function showUser() {
  me = await api("GET", "whoami");
  const user = document.getElementById("user");
  if (!me.login_required) { user.textContent = ""; return; }
  user.innerHTML = `${esc(me.name)} (${esc(me.role)}) <a href="#" id="logout">log out</a>`;
  document.getElementById("logout").onclick = async (e) => {
    e.preventDefault();
    await api("POST", "logout");
    location.reload();
  };
}

// -- live events -----------------------------------------------------------------

let events = null;
function connectEvents() {
  if (events) events.close();
  const live = document.getElementById("live");
  events = new EventSource("/api/v1/events");
  events.onopen = () => { live.textContent = "live"; live.classList.remove("off"); };
  events.onerror = () => { live.textContent = "reconnecting"; live.classList.add("off"); };
  for (const type of ["job", "send", "studies", "deleted"]) {
    events.addEventListener(type, (message) => {
      let data = {};
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (currentPage && currentPage.refresh) currentPage.refresh({ type, data });
    });
  }
}

// -- pages -------------------------------------------------------------------------

// Each stream's upload as shown (status HTML, progress 0-1 or null), kept
// apart from the cards: a job event redraws them while an upload goes on, and
// the redrawn card must show the upload where it is.
const uploadShown = {};
function showUpload(ae, statusHtml, progress = null) {
  uploadShown[ae] = { statusHtml, progress };
  applyUpload(ae);
}
function applyUpload(ae) {
  const card = document.querySelector(`[data-testid=stream][data-ae="${CSS.escape(ae)}"]`);
  const status = card && card.querySelector(".upload-status");
  const bar = card && card.querySelector(".upload progress");
  if (!status || !bar) return;
  const shown = uploadShown[ae];
  status.innerHTML = shown.statusHtml;
  bar.hidden = shown.progress === null;
  if (shown.progress !== null) bar.value = shown.progress;
}

// Sends a ZIP of DICOM files to a stream (POST /api/v1/upload), showing how
// much has gone; the node answers once every file is stored.
function uploadZip(input, file) {
  const ae = input.dataset.upload;
  const request = new XMLHttpRequest();
  request.open("POST", "/api/v1/upload?ae=" + encodeURIComponent(ae));
  request.setRequestHeader("Content-Type", "application/zip");
  showUpload(ae, esc(`sending ${file.name}…`), 0);
  request.upload.onprogress = (e) => {
    if (e.lengthComputable)
      showUpload(ae, esc(`${bytes(e.loaded)} of ${bytes(e.total)}`), e.loaded / e.total);
  };
  request.upload.onload = () => showUpload(ae, "storing…", 1);
  request.onload = () => {
    input.value = "";
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
    if (request.status === 202) {
      showUpload(ae, `<span class="ok">${body.instances} instances in ${body.studies.length} studies stored</span>` +
        (body.skipped.length ? ` <span class="muted">(${body.skipped.length} entries skipped)</span>` : ""));
      toast(`${file.name}: ${body.instances} instances stored`);
    } else {
      showUpload(ae, `<span class="error">${esc(body.error || "HTTP " + request.status)}</span>`);
      toast(body.error || "the upload failed", true);
    }
  };
  request.onerror = () => showUpload(ae, '<span class="error">the connection broke; try again</span>');
  request.send(file);
}

// A ZIP (entries stored, as the node's own downloads) of the files of a
// folder the user picked: the node takes uploads as ZIPs. Each file is read
// once for its CRC-32 and then referenced, not copied, by the Blob. Without
// ZIP64, a folder must stay under 4 GiB.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
async function zipOfFolder(files, onRead) {
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (total + files.length * 200 >= 2 ** 32 - 1)
    throw new Error(`the folder holds ${bytes(total)}: more than a ZIP without ZIP64 holds (4 GB); upload it as a ZIP made with zip -r, or send it by C-STORE`);
  const encoder = new TextEncoder();
  const parts = [], central = [];
  let offset = 0, read = 0;
  for (const file of files) {
    const name = encoder.encode(file.webkitRelativePath || file.name);
    const crc = crc32(new Uint8Array(await file.arrayBuffer()));
    read += file.size;
    onRead(read, total);
    const header = (size, signature) => {
      const b = new DataView(new ArrayBuffer(size));
      b.setUint32(0, signature, true);
      return b;
    };
    const local = header(30, 0x04034b50);
    // version 2.0, flags: UTF-8 names; stored; crc, sizes, name length
    const january1980 = (1 << 5) | 1; // the first date a ZIP can hold
    local.setUint16(4, 20, true); local.setUint16(6, 0x0800, true); local.setUint16(12, january1980, true);
    local.setUint32(14, crc, true); local.setUint32(18, file.size, true); local.setUint32(22, file.size, true);
    local.setUint16(26, name.length, true);
    const entry = header(46, 0x02014b50);
    entry.setUint16(4, 20, true); entry.setUint16(6, 20, true); entry.setUint16(8, 0x0800, true);
    entry.setUint16(14, january1980, true);
    entry.setUint32(16, crc, true); entry.setUint32(20, file.size, true); entry.setUint32(24, file.size, true);
    entry.setUint16(28, name.length, true); entry.setUint32(42, offset, true);
    parts.push(local, name, file);
    central.push(entry, name);
    offset += 30 + name.length + file.size;
  }
  const centralSize = central.reduce((sum, p) => sum + p.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true); end.setUint16(10, files.length, true);
  end.setUint32(12, centralSize, true); end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

// Uploads the folder the user picked on a stream card, as a ZIP made here.
async function uploadFolder(input) {
  const files = [...input.files];
  const ae = input.dataset.upload;
  const folder = (files[0].webkitRelativePath || "folder").split("/")[0];
  if (files.length > 65535) {
    showUpload(ae, `<span class="error">${files.length} files: a ZIP without ZIP64 holds 65535; upload a ZIP made with zip -r</span>`);
    return;
  }
  try {
    const zip = await zipOfFolder(files, (done, total) =>
      showUpload(ae, esc(`reading ${folder}: ${bytes(done)} of ${bytes(total)}`), total ? done / total : 1));
    uploadZip(input, new File([zip], folder + ".zip", { type: "application/zip" }));
  } catch (e) {
    input.value = "";
    showUpload(ae, `<span class="error">${esc(e.message)}</span>`);
  }
}

async function streamsPage() {
  main.innerHTML = `<h1>Streams</h1><p class="muted">Send a study by C-STORE to a stream's AE title;
    the study is processed when it has arrived and the results are routed as routing.json says.</p>
    <div class="cards" id="stream-cards"></div><div id="stream-problems"></div>`;
  async function draw() {
    const data = await api("GET", "streams");
    document.getElementById("stream-cards").innerHTML = data.streams.map((s) => `
      <div class="card" data-testid="stream" data-ae="${esc(s.ae_title)}">
        <h3>${esc(s.title || s.name)} ${s.enabled ? "" : '<span class="muted">(disabled)</span>'}</h3>
        <div>AE title <span class="ae">${esc(s.ae_title)}</span>
          <span class="muted">· ${esc(s.kind)} · folder ${esc(s.name)}${s.version ? " · v" + esc(s.version) : ""}</span></div>
        <p class="desc">${esc(s.description)}</p>
        <div class="facts">
          <span>queued <b data-testid="queued">${s.queued}</b></span>
          <span>running <b>${s.running}</b>${s.running_jobs.length ? " (job " + s.running_jobs.map((id) => `<a href="#/jobs/${id}">${id}</a>`).join(", ") + ")" : ""}</span>
          <span>mean run ${s.runs ? seconds(s.mean_s) : "–"}</span>
          <span>ETA ${s.eta_s === null || s.queued + s.running === 0 ? "–" : seconds(s.eta_s)}</span>
        </div>
        <div class="copy"><code>${esc(s.storescu)}</code>
          <button class="secondary" data-copy="${esc(s.storescu)}" title="copy the command">copy</button></div>
        ${s.enabled ? `<div class="upload"><label class="button secondary">Upload ZIP…
          <input type="file" accept=".zip,application/zip" data-upload="${esc(s.ae_title)}" data-testid="upload-input"></label>
          <label class="button secondary">Upload folder…
          <input type="file" webkitdirectory multiple data-upload="${esc(s.ae_title)}" data-folder data-testid="upload-folder"></label>
          <progress max="1" value="0" hidden></progress><span class="upload-status" data-testid="upload-status"></span></div>` : ""}
      </div>`).join("") || "<p>No streams are loaded.</p>";
    document.getElementById("stream-problems").innerHTML = data.problems.length
      ? `<h2>Streams that did not load</h2><ul class="problems">${data.problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul>` : "";
    for (const b of document.querySelectorAll("[data-copy]"))
      b.onclick = () => navigator.clipboard.writeText(b.dataset.copy).then(() => toast("copied"), () => toast("copy it by hand", true));
    for (const input of document.querySelectorAll("[data-upload]"))
      input.onchange = () => {
        if (!input.files.length) return;
        if ("folder" in input.dataset) uploadFolder(input); else uploadZip(input, input.files[0]);
      };
    for (const ae of Object.keys(uploadShown)) applyUpload(ae);
  }
  await draw();
  return { refresh: debounce((e) => { if (e.type === "job") draw(); }, 300) };
}

const jobFilters = { stream: "", state: "", sender: "", q: "", from: "", to: "", offset: 0, limit: 50 };

// DICOM values as people read them: "DOE^JANE" as "DOE JANE", 20261207 as 2026-12-07.
const personName = (pn) => (pn || "").split("=")[0].split("^").filter(Boolean).join(" ");
const dicomDate = (da) => /^\d{8}$/.test(da || "") ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : (da || "");

function patientCell(j) {
  if (!j.patient_name && !j.patient_id) return `<span class="muted">—</span>`;
  return `<span data-testid="patient">${esc(personName(j.patient_name))}</span><br><span class="muted">${esc(j.patient_id)}</span>`;
}

function studyCell(j) {
  const what = [dicomDate(j.study_date), j.study_description].filter(Boolean).join(" · ");
  const counts = `${j.modalities ? esc(j.modalities) + ", " : ""}${j.series ? j.series + " series, " : ""}${j.instances} instances`;
  return `<span title="Study ${esc(j.study_uid)}${j.series_uid ? "\nSeries " + esc(j.series_uid) : ""}">${esc(what || j.study_uid)}</span>
    <br><span class="muted">${counts}${j.accession_number ? " · acc. " + esc(j.accession_number) : ""}</span>`;
}

async function jobsPage() {
  const streams = (await api("GET", "streams")).streams;
  // Stream folder name -> mean run time, for running jobs' progress.
  const meanByStream = Object.fromEntries(streams.map((s) => [s.name, s.mean_s]));
  const options = (values, selected) => values.map((v) => `<option ${v === selected ? "selected" : ""} value="${esc(v)}">${esc(v || "all")}</option>`).join("");
  main.innerHTML = `<h1>Jobs</h1>
    <form class="filters" id="job-filters">
      <label>Stream <select name="stream">${options(["", ...streams.map((s) => s.name)], jobFilters.stream)}</select></label>
      <label>State <select name="state">${options(["", "queued", "running", "success", "failed", "cancelled", "skipped"], jobFilters.state)}</select></label>
      <label>Sender <input name="sender" value="${esc(jobFilters.sender)}" placeholder="AE title or address"></label>
      <label>Search <input name="q" id="job-search" value="${esc(jobFilters.q)}" placeholder="patient, accession, study, id…"></label>
      <label>From <input name="from" type="date" value="${esc(jobFilters.from)}"></label>
      <label>To <input name="to" type="date" value="${esc(jobFilters.to)}"></label>
      <button type="submit">Filter</button>
    </form>
    <table><thead><tr><th>Id</th><th>Stream</th><th>State</th><th>Patient</th><th>Study</th>
      <th>Sender</th><th>Received</th><th>Run time</th><th>Message</th></tr></thead>
      <tbody id="job-rows"></tbody></table>
    <div class="pager"><button class="secondary" id="newer">newer</button><span id="page-info"></span>
      <button class="secondary" id="older">older</button></div>`;
  async function draw() {
    const q = new URLSearchParams();
    for (const key of ["stream", "state", "sender", "q"]) if (jobFilters[key]) q.set(key, jobFilters[key]);
    if (jobFilters.from) q.set("from", jobFilters.from);
    if (jobFilters.to) {
      const next = new Date(jobFilters.to);
      next.setUTCDate(next.getUTCDate() + 1);
      q.set("to", next.toISOString().slice(0, 10));
    }
    q.set("limit", jobFilters.limit);
    q.set("offset", jobFilters.offset);
    const page = await api("GET", "jobs?" + q);
    document.getElementById("job-rows").innerHTML = page.jobs.map((j) => `
      <tr class="clickable" data-job="${j.id}" data-testid="job-row">
        <td><a href="#/jobs/${j.id}">${j.id}</a></td><td>${esc(j.stream)}</td>
        <td data-testid="job-state">${state(j.state)}</td>
        <td>${patientCell(j)}</td><td>${studyCell(j)}</td>
        <td>${esc(j.calling_ae)}<br><span class="muted">${esc(j.peer)}</span></td>
        <td>${when(j.received)}</td><td>${progress(j, meanByStream)}</td>
        <td>${esc(j.message)}</td></tr>`).join("") || `<tr><td colspan="9" class="muted">No jobs match.</td></tr>`;
    for (const row of document.querySelectorAll("[data-job]"))
      row.onclick = () => { location.hash = "#/jobs/" + row.dataset.job; };
    const last = Math.min(jobFilters.offset + page.jobs.length, page.total);
    document.getElementById("page-info").textContent = page.total ? `${jobFilters.offset + 1}–${last} of ${page.total}` : "0 jobs";
    document.getElementById("newer").disabled = jobFilters.offset === 0;
    document.getElementById("older").disabled = last >= page.total;
  }
  document.getElementById("job-filters").onsubmit = (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    for (const key of ["stream", "state", "sender", "q", "from", "to"]) jobFilters[key] = form.get(key) || "";
    jobFilters.offset = 0;
    draw().catch((err) => toast(err.message, true));
  };
  document.getElementById("newer").onclick = () => { jobFilters.offset = Math.max(0, jobFilters.offset - jobFilters.limit); draw(); };
  document.getElementById("older").onclick = () => { jobFilters.offset += jobFilters.limit; draw(); };
  await draw();
  return { refresh: debounce((e) => { if (e.type === "job" || e.type === "deleted") draw(); }, 250) };
}

function measuresTable(result) {
  // result.json of a stream: numbers at the top and per series are shown as
  // a table; anything else as JSON.
  const rows = [];
  const add = (prefix, object) => {
    for (const [key, value] of Object.entries(object)) {
      if (typeof value === "number" || typeof value === "string" || typeof value === "boolean")
        rows.push([prefix + key, value]);
    }
  };
  add("", result);
  if (Array.isArray(result.series))
    result.series.forEach((s, i) => add(`series ${i + 1}: `, s));
  if (!rows.length) return `<pre>${esc(JSON.stringify(result, null, 2))}</pre>`;
  return `<table class="measures" data-testid="measures">${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(typeof v === "number" ? +v.toPrecision(6) : v)}</td></tr>`).join("")}</table>`;
}

// The stats kernel's histograms (result.json: series[].histogram) as bar charts.
function histogramCharts(result) {
  const series = Array.isArray(result.series) ? result.series.filter((s) => s.histogram && Array.isArray(s.histogram.counts) && s.histogram.counts.length) : [];
  return series.map((s, i) => {
    const counts = s.histogram.counts, edges = s.histogram.edges || [];
    const width = 480, height = 140, top = Math.max(...counts, 1);
    const bar = width / counts.length;
    // A log scale: air or background outnumbers tissue by orders of magnitude.
    const scale = (c) => Math.log1p(c) / Math.log1p(top);
    const bars = counts.map((c, b) => {
      const h = scale(c) * (height - 20);
      const range = edges.length > b + 1 ? `${+(+edges[b]).toPrecision(4)} to ${+(+edges[b + 1]).toPrecision(4)}` : `bin ${b + 1}`;
      return `<rect x="${(b * bar).toFixed(2)}" y="${(height - 20 - h).toFixed(2)}" width="${Math.max(bar - 1, 1).toFixed(2)}" height="${h.toFixed(2)}"><title>${esc(range)}: ${c} voxels</title></rect>`;
    }).join("");
    const low = edges.length ? +(+edges[0]).toPrecision(4) : "", high = edges.length ? +(+edges[edges.length - 1]).toPrecision(4) : "";
    return `<figure class="histogram" data-testid="histogram">
      <svg viewBox="0 0 ${width} ${height}" role="img" aria-label="histogram of series ${i + 1}">${bars}
        <text x="0" y="${height - 4}">${esc(low)}</text><text x="${width}" y="${height - 4}" text-anchor="end">${esc(high)}</text></svg>
      <figcaption>Series ${i + 1} (${esc(s.Modality || "")}, ${esc(s.after || "input")}): ${counts.length} bins, highest ${top} voxels, heights on a log scale</figcaption></figure>`;
  }).join("");
}

// A job's image series: a strip of thumbnails, and a slice viewer for the one
// picked (scroll or arrow keys through slices, a window from the data).
async function drawImages(id, holder) {
  const listing = await api("GET", `jobs/${id}/series`);
  if (!listing.series.length) {
    holder.innerHTML = `<p class="muted">No DICOM series in INPUT or OUTPUT.</p>`;
    return;
  }
  const picture = (s, query) => `/api/v1/jobs/${id}/series/${encodeURIComponent(s.series_uid)}/preview.png?folder=${s.folder}&${query}`;
  const label = (s) => `${s.folder} · ${esc(s.modality || "?")}${s.description ? ` · ${esc(s.description)}` : ""} · ${s.slices} ${s.slices === 1 ? "file" : "slices"}`;
  holder.innerHTML = `<div class="thumbs">${listing.series.map((s, i) => `
      <button type="button" class="thumb" data-series="${i}" data-testid="thumbnail" title="${esc(s.series_uid)}" ${s.not_shown ? "disabled" : ""}>
        ${s.not_shown
          ? `<div class="placeholder" data-testid="not-shown">Cannot be shown: ${esc(s.not_shown)}</div>`
          : `<img alt="series ${esc(s.series_uid)}" loading="lazy" src="${picture(s, "size=160")}">`}
        <span>${label(s)}</span></button>`).join("")}</div>
    <div class="viewer" id="viewer" data-testid="viewer" hidden></div>`;
  const viewer = holder.querySelector("#viewer");
  const open = (s) => {
    let slice = Math.floor(s.slices / 2);
    viewer.hidden = false;
    viewer.innerHTML = `<div class="viewer-controls">
        <strong>${label(s)}</strong>
        <label>Slice <input type="range" min="0" max="${s.slices - 1}" value="${slice}" data-testid="viewer-slice"></label>
        <span data-testid="viewer-position"></span>
        <label>Window <select data-testid="viewer-window">${s.windows.map((w) => `<option value="${esc(w.name)}">${esc(w.name)} (${+w.center.toPrecision(5)} / ${+w.width.toPrecision(5)})</option>`).join("")}</select></label>
      </div>
      <img data-testid="viewer-image" alt="slice">`;
    const range = viewer.querySelector("input"), select = viewer.querySelector("select"), img = viewer.querySelector("img");
    const show = () => {
      range.value = slice;
      viewer.querySelector("[data-testid=viewer-position]").textContent = `${slice + 1} of ${s.slices}`;
      img.src = picture(s, `slice=${slice}&window=${encodeURIComponent(select.value)}&size=768`);
    };
    const step = (by) => { slice = Math.min(s.slices - 1, Math.max(0, slice + by)); show(); };
    range.oninput = () => { slice = +range.value; show(); };
    select.onchange = show;
    img.onwheel = (e) => { e.preventDefault(); step(e.deltaY > 0 ? 1 : -1); };
    img.tabIndex = 0;
    img.onkeydown = (e) => { if (e.key === "ArrowDown" || e.key === "ArrowRight") step(1); if (e.key === "ArrowUp" || e.key === "ArrowLeft") step(-1); };
    show();
  };
  holder.querySelectorAll(".thumb:not([disabled])").forEach((b) => { b.onclick = () => open(listing.series[+b.dataset.series]); });
}

// A kernel pipeline's phase while it runs (progress.json): a bar over
// loading, each step and writing, and what it is doing.
function stepProgress(p) {
  if (!p || typeof p !== "object" || !p.steps) return "";
  const what = p.step >= 1 && p.step <= p.steps ? `step ${p.step} of ${p.steps}: ${p.doing}` : p.doing;
  return `<progress max="${p.steps + 2}" value="${p.step + 0.5}"></progress> <span data-testid="step-progress">${esc(what)}</span>`;
}

async function jobPage(id) {
  main.innerHTML = `<h1>Job ${esc(id)}</h1><div id="job-detail"></div>
    <h2>Images</h2><div id="job-images" data-testid="job-images"><p class="muted">Reading the series…</p></div>
    <h2>Processing log</h2><pre id="job-log" data-testid="job-log"></pre>`;
  let logOffset = 0;
  let job = null;
  let imagesDrawnFor = null; // the job's state when the pictures were listed
  let meanByStream = {};
  api("GET", "streams").then((r) => { meanByStream = Object.fromEntries(r.streams.map((s) => [s.name, s.mean_s])); }).catch(() => {});
  let pollTimer = null;
  // While the job runs: its progress every second, without redrawing the page.
  async function poll() {
    pollTimer = null;
    const holder = document.getElementById("job-progress");
    if (!holder || !job) return;
    let now;
    try { now = await api("GET", "jobs/" + id); } catch (e) { return; }
    if (now.state !== job.state) return draw();
    job = now;
    holder.innerHTML = `${stepProgress(job.progress)} ${progress(job, meanByStream)}`;
    pollTimer = setTimeout(poll, 1000);
  }
  async function readLog() {
    for (;;) {
      const chunk = await api("GET", `jobs/${id}/log?offset=${logOffset}`);
      if (chunk.text) {
        const pre = document.getElementById("job-log");
        if (!pre) return;
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent += chunk.text;
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
      logOffset = chunk.next_offset;
      if (chunk.next_offset >= chunk.size) return;
    }
  }
  async function draw() {
    try {
      job = await api("GET", "jobs/" + id);
    } catch (e) {
      // A link from an older send or an old bookmark: say what happened to the job.
      document.getElementById("job-detail").innerHTML = e.status === 404
        ? `<p data-testid="job-gone">Job ${esc(id)} no longer exists: it was deleted (by a user or by
            the scrubber). Its sends stay listed on the <a href="#/sends">Sends</a> page.</p>`
        : `<p class="error">${esc(e.message)}</p>`;
      return;
    }
    const active = job.state === "queued" || job.state === "running";
    document.getElementById("job-detail").innerHTML = `
      <div class="actions">
        <a href="/api/v1/jobs/${job.id}/input.zip" download><button class="secondary" id="download-input">INPUT (${job.input_files} files)</button></a>
        <a href="/api/v1/jobs/${job.id}/output.zip" download><button class="secondary" id="download-output">OUTPUT (${job.output_files} files)</button></a>
        <button id="retry" ${!canChange() || active ? "disabled" : ""}>Run again</button>
        <button id="cancel" class="secondary" ${!canChange() || !active ? "disabled" : ""}>Cancel</button>
        <button id="delete" class="danger" ${!canChange() || active ? "disabled" : ""}>Delete</button>
      </div>
      <dl class="facts">
        <dt>State</dt><dd data-testid="detail-state">${state(job.state)}</dd>
        <dt>Stream</dt><dd>${esc(job.stream)} (called AE ${esc(job.called_ae)})</dd>
        <dt>Sender</dt><dd>${esc(job.calling_ae)} at ${esc(job.peer)}</dd>
        <dt>Patient</dt><dd data-testid="detail-patient">${job.patient_name || job.patient_id ? `${esc(personName(job.patient_name))} (ID ${esc(job.patient_id)})` : "—"}</dd>
        <dt>Study</dt><dd>${esc([dicomDate(job.study_date), job.study_description].filter(Boolean).join(" · ") || "—")}${job.accession_number ? `, accession ${esc(job.accession_number)}` : ""}<br>
          <span class="muted">${esc(job.modalities)}${job.series ? `, ${job.series} series` : ""}</span></dd>
        <dt>Study UID</dt><dd class="mono">${esc(job.study_uid)}</dd>
        ${job.series_uid ? `<dt>Series</dt><dd class="mono">${esc(job.series_uid)}</dd>` : ""}
        <dt>Instances</dt><dd>${job.instances} (${bytes(job.bytes)})</dd>
        <dt>Received</dt><dd>${when(job.received)}</dd>
        <dt>Completed</dt><dd>${when(job.completed)}</dd>
        <dt>Started</dt><dd>${when(job.started)}</dd>
        <dt>Finished</dt><dd>${when(job.finished)}</dd>
        ${active ? `<dt>Progress</dt><dd id="job-progress" data-testid="detail-progress">${stepProgress(job.progress)} ${progress(job, meanByStream)}</dd>` : `<dt>Run time</dt><dd>${duration(job)}</dd>`}
        ${job.worker ? `<dt>Ran on</dt><dd data-testid="detail-worker">worker ${esc(job.worker)}</dd>` : ""}
        ${job.lost_runs ? `<dt>Lost runs</dt><dd>${job.lost_runs} (its worker was lost; the job ran again)</dd>` : ""}
        ${job.origin ? `<dt>Made as</dt><dd data-testid="detail-origin">${esc(job.origin)}</dd>` : ""}
        <dt>Outcome</dt><dd>${esc(job.message)}</dd>
      </dl>
      ${job.result ? `<h2>Measures (result.json)</h2>${histogramCharts(job.result)}${measuresTable(job.result)}` : ""}
      <h2>Routing</h2><div id="job-routing" data-testid="routing-preview"></div>
      <form class="filters" id="send-to" style="display: none">
        <label>Send <select name="directory"><option>OUTPUT</option><option>INPUT</option></select></label>
        <label>to <select name="destination" id="send-destination"></select></label>
        <button type="submit" id="send-now">Send now</button>
      </form>
      ${job.sends.length ? `<h2>Sends</h2>${sendsTable(job.sends)}` : ""}`;
    document.getElementById("retry").onclick = () => act("job queued again", api("POST", `jobs/${id}/retry`), () => {
      document.getElementById("job-log").textContent = ""; logOffset = 0; draw();
    });
    document.getElementById("cancel").onclick = () => act("job cancelled", api("POST", `jobs/${id}/cancel`), draw);
    document.getElementById("delete").onclick = () => {
      if (confirm(`Delete job ${id} with its INPUT and OUTPUT?`))
        act("job deleted", api("DELETE", "jobs/" + id), () => { location.hash = "#/jobs"; });
    };
    bindSendButtons(draw);
    drawRouting().catch((e) => { document.getElementById("job-routing").textContent = e.message; });
    clearTimeout(pollTimer);
    pollTimer = job.state === "running" ? setTimeout(poll, 1000) : null;
    // OUTPUT's series appear when a run ends: list them again on each new state.
    if (imagesDrawnFor !== job.state) {
      imagesDrawnFor = job.state;
      const holder = document.getElementById("job-images");
      drawImages(id, holder).catch((e) => { holder.textContent = e.message; });
    }
    await readLog();
  }
  // What routing.json would send of this job now, and sending it by hand.
  async function drawRouting() {
    const [preview, status] = await Promise.all([api("GET", `jobs/${id}/routing`), api("GET", "status")]);
    document.getElementById("job-routing").innerHTML = preview.sends.length
      ? `<table><thead><tr><th>Rule</th><th>Destination</th><th>Files</th><th>Note</th></tr></thead><tbody>
          ${preview.sends.map((s) => `<tr data-testid="routing-row"><td>${esc(s.rule)}</td>
            <td>${esc(s.destination)}<br><span class="muted">${sendPeer(s)}</span></td>
            <td>${s.files_total}</td><td>${esc(s.message)}</td></tr>`).join("")}</tbody></table>
          <p class="muted">A dry run of routing.json for this job as it is now: nothing was sent.</p>`
      : `<p class="muted">No rule of routing.json sends anything of this job (a dry run).</p>`;
    const select = document.getElementById("send-destination");
    select.innerHTML = status.destinations.map((d) => `<option>${esc(d)}</option>`).join("");
    const form = document.getElementById("send-to");
    // Admins only, and only with somewhere to send to (the node's destinations).
    form.style.display = canChange() && status.destinations.length ? "" : "none";
    form.onsubmit = (e) => {
      e.preventDefault();
      const data = new FormData(form);
      act(`sending to ${data.get("destination")}`, api("POST", `jobs/${id}/send`,
        { destination: data.get("destination"), directory: data.get("directory") }), draw);
    };
  }
  await draw();
  return {
    refresh: debounce((e) => {
      if ((e.type === "job" && String(e.data.id) === String(id)) ||
          (e.type === "send" && String(e.data.job_id) === String(id))) draw();
    }, 150),
  };
}

function sendsTable(sends) {
  return `<table><thead><tr><th>Send</th><th>Job</th><th>Destination</th><th>State</th><th>Files</th>
    <th>Attempts</th><th>Created</th><th>Message</th><th></th></tr></thead><tbody>
    ${sends.map((s) => `<tr data-testid="send-row">
      <td>${s.id}</td><td><a href="#/jobs/${s.job_id}">${s.job_id}</a></td>
      <td>${esc(s.destination)}<br><span class="muted">${sendPeer(s)}</span></td>
      <td>${state(s.state)}</td><td>${s.files_sent} / ${s.files_total}${s.files_failed ? ` <span class="error">(${s.files_failed} refused)</span>` : ""}</td>
      <td>${s.attempts}</td><td>${when(s.created)}</td><td>${esc(s.message)}</td>
      <td>${s.state === "failed" ? `<button data-retry-send="${s.id}" ${canChange() ? "" : "disabled"}>Retry</button>` : ""}</td></tr>`).join("")}
    </tbody></table>`;
}

// The head's workers (docs/cluster.md): who joined, their slots and health.
function workersTable(cluster) {
  const rows = cluster.workers.map((w) => `<tr data-testid="worker-row">
      <td>${esc(w.name)}</td><td>${w.state === "joined" ? '<span class="ok">joined</span>' : '<span class="error">lost</span>'}</td>
      <td>${w.running} / ${w.slots}</td><td>${esc(w.host)} (pid ${w.pid}, ${esc(w.version)})</td>
      <td>${when(w.joined)}</td><td>${when(w.last_answer)}</td><td>${w.joins}</td></tr>`).join("");
  return `<h2>Workers</h2><p class="muted">They join on ${esc(cluster.bind)}:${cluster.port}
    (dcmstreams worker --join).</p>` + (cluster.workers.length
    ? `<table><thead><tr><th>Worker</th><th>State</th><th>Jobs / slots</th><th>Host (pid, version)</th>
        <th>Joined</th><th>Last answer</th><th>Joins</th></tr></thead><tbody>${rows}</tbody></table>`
    : `<p class="muted">No worker has joined yet.</p>`);
}

function bindSendButtons(after) {
  for (const b of document.querySelectorAll("[data-retry-send]"))
    b.onclick = () => act("send queued again", api("POST", `sends/${b.dataset.retrySend}/retry`), after);
}

async function studiesPage() {
  main.innerHTML = `<h1>Pending studies</h1><p class="muted">Studies still arriving. A study becomes a job
    after its quiet period; "complete now" makes it one at once.</p><div id="studies"></div>`;
  async function draw() {
    const data = await api("GET", "studies");
    document.getElementById("studies").innerHTML = data.studies.length ? `<table><thead><tr>
      <th>Study</th><th>Stream</th><th>From</th><th>Instances</th><th>Size</th><th>First</th><th>Last arrival</th><th>Completes</th><th></th></tr></thead><tbody>
      ${data.studies.map((s) => `<tr data-testid="study-row"><td class="mono">${esc(s.study_uid)}</td><td>${esc(s.stream)} (${esc(s.called_ae)})</td>
        <td>${esc(s.calling_ae)} at ${esc(s.peer)}</td><td>${s.instances}</td><td>${bytes(s.bytes)}</td>
        <td>${when(s.first_arrival)}</td><td>${when(s.last_arrival)}</td>
        <td data-testid="countdown" data-by="${esc(s.completes_by)}">${countdown(s.completes_by)}</td>
        <td><button data-complete="${esc(s.study_uid)}" ${canChange() ? "" : "disabled"}>Complete now</button></td></tr>`).join("")}
      </tbody></table>` : `<p class="muted">No study is arriving.</p>`;
    for (const b of document.querySelectorAll("[data-complete]"))
      b.onclick = () => act("study completed", api("POST", `studies/${b.dataset.complete}/complete`), draw);
  }
  await draw();
  // The countdowns tick every second; the list itself is read every 3 s.
  const ticker = setInterval(() => {
    for (const cell of document.querySelectorAll("[data-testid=countdown]")) cell.textContent = countdown(cell.dataset.by);
  }, 1000);
  const timer = setInterval(() => { if (document.getElementById("studies")) draw(); else { clearInterval(timer); clearInterval(ticker); } }, 3000);
  return { refresh: debounce((e) => { if (e.type === "studies" || e.type === "job") draw(); }, 200), leave: () => clearInterval(timer) };
}

async function sendsPage() {
  main.innerHTML = `<h1>Sends</h1><p class="muted">Results routed out by C-STORE, newest first.
    A failed send keeps its files; "Retry" sends the ones not yet stored.</p><div id="sends"></div>`;
  async function draw() {
    const data = await api("GET", "sends?limit=200");
    document.getElementById("sends").innerHTML = data.sends.length ? sendsTable(data.sends) : `<p class="muted">Nothing was sent yet.</p>`;
    bindSendButtons(draw);
  }
  await draw();
  return { refresh: debounce((e) => { if (e.type === "send") draw(); }, 250) };
}

async function routingPage() {
  main.innerHTML = `<h1>Routing</h1><p class="muted">routing.json: where the results of finished jobs
    are sent (docs/routing.md). Saving checks the file first; a file with a mistake is not saved.</p>
    <textarea id="routing-text" spellcheck="false" ${canChange() ? "" : "readonly"}></textarea>
    <div class="actions"><button id="routing-save" ${canChange() ? "" : "disabled"}>Save</button>
      <button class="secondary" id="routing-reload">Reload</button><span id="routing-status"></span></div>
    <ul class="problems" id="routing-problems" data-testid="routing-problems"></ul>`;
  const text = document.getElementById("routing-text");
  const status = document.getElementById("routing-status");
  const problems = document.getElementById("routing-problems");
  async function load() {
    const response = await fetch("/api/v1/routing");
    if (response.status === 401) { showLogin(); return; }
    text.value = await response.text();
    problems.innerHTML = "";
    status.textContent = "";
  }
  document.getElementById("routing-reload").onclick = load;
  document.getElementById("routing-save").onclick = async () => {
    problems.innerHTML = "";
    try {
      const saved = await api("PUT", "routing", text.value);
      status.innerHTML = `<span class="ok" data-testid="routing-saved">saved: ${saved.rules} rules</span>`;
    } catch (e) {
      status.innerHTML = `<span class="error">not saved</span>`;
      const list = (e.body && e.body.problems) || [{ message: e.message }];
      problems.innerHTML = list.map((p) => `<li>${p.line ? `<span class="place">line ${p.line}, column ${p.column}</span>: ` : p.place ? `<span class="place">${esc(p.place)}</span>: ` : ""}${esc(p.message)}</li>`).join("");
      const first = list.find((p) => p.line);
      if (first) {
        // Put the cursor where the syntax error is.
        const lines = text.value.split("\n");
        let index = 0;
        for (let i = 0; i < first.line - 1 && i < lines.length; i++) index += lines[i].length + 1;
        index += first.column - 1;
        text.focus();
        text.setSelectionRange(index, index + 1);
      }
    }
  };
  await load();
  return {};
}

// Whole-number ticks (1, 2 or 5 times a power of ten) covering `max`.
function niceStep(max) {
  const rough = Math.max(1, max / 4);
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
  return 10 * power;
}

function drawChart(canvas, samples) {
  const ctx = canvas.getContext("2d");
  const dpr = devicePixelRatio;
  const w = (canvas.width = canvas.clientWidth * dpr);
  const h = (canvas.height = canvas.clientHeight * dpr);
  ctx.clearRect(0, 0, w, h);
  const series = [["instances", "#1f77b4"], ["jobs", "#2e7d32"], ["sends", "#d35400"]];
  const left = 44 * dpr, right = 10 * dpr, top = 10 * dpr, bottom = 24 * dpr;
  const peak = Math.max(1, ...samples.flatMap((s) => series.map(([k]) => s[k])));
  const step = niceStep(peak);
  const max = Math.ceil(peak / step) * step;
  ctx.strokeStyle = "#d8dee6";
  ctx.fillStyle = "#5f6b7a";
  ctx.font = `${11 * dpr}px sans-serif`;
  ctx.textAlign = "right";
  for (let v = 0; v <= max; v += step) {
    const y = h - bottom - ((h - top - bottom) * v) / max;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    ctx.fillText(String(v), left - 6 * dpr, y + 4 * dpr);
  }
  const n = Math.max(samples.length, 2);
  const xOf = (i) => left + ((w - left - right) * i) / (n - 1);
  // Time labels: about one every 120 px, as local hours and minutes.
  ctx.textAlign = "center";
  const every = Math.max(1, Math.ceil(samples.length / Math.max(1, (w / dpr) / 120)));
  samples.forEach((s, i) => {
    if (i % every !== 0) return;
    const t = new Date(s.at);
    const label = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    ctx.fillText(label, xOf(i), h - 6 * dpr);
  });
  for (const [key, colour] of series) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2 * dpr;
    ctx.beginPath();
    samples.forEach((s, i) => {
      const y = h - bottom - ((h - top - bottom) * s[key]) / max;
      if (i === 0) ctx.moveTo(xOf(i), y); else ctx.lineTo(xOf(i), y);
    });
    ctx.stroke();
  }
}

async function statusPage() {
  main.innerHTML = `<h1>Node status</h1><dl class="facts" id="status-facts"></dl>
    <h2>Throughput, last hour (per 10 s)</h2>
    <div class="legend"><span style="--c:#1f77b4">instances received</span><span style="--c:#2e7d32">jobs finished</span><span style="--c:#d35400">sends finished</span></div>
    <canvas class="chart" id="throughput"></canvas>
    <div id="workers"></div>
    <p class="muted">Prometheus metrics: <a href="/metrics">/metrics</a>. Health: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>.</p>`;
  async function draw() {
    const [s, t, ready, cluster] = await Promise.all([api("GET", "status"), api("GET", "throughput"),
      fetch("/readyz").then((r) => r.json()), api("GET", "workers")]);
    document.getElementById("workers").innerHTML = cluster.cluster ? workersTable(cluster) : "";
    const used = s.disk.total_bytes - s.disk.free_bytes;
    document.getElementById("status-facts").innerHTML = `
      <dt>Version</dt><dd>${esc(s.version)}</dd>
      <dt>Ready</dt><dd data-testid="ready">${ready.ready ? '<span class="ok">yes</span>' : `<span class="error">no</span><ul class="problems">${ready.problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul>`}</dd>
      <dt>Node AE title</dt><dd>${esc(s.ae_title)}</dd>
      <dt>DICOM</dt><dd>${esc(s.dicom.bind)}:${s.dicom.port}</dd>
      <dt>Up since</dt><dd>${when(s.started)} (${seconds(s.uptime_s)})</dd>
      <dt>Data</dt><dd>${esc(s.data_dir)}: ${bytes(s.disk.free_bytes)} free of ${bytes(s.disk.total_bytes)} (${s.disk.total_bytes ? ((100 * used) / s.disk.total_bytes).toFixed(0) : 0}% used; reserve ${bytes(s.disk.reserve_bytes)})</dd>
      <dt>Streams</dt><dd>${s.streams}</dd>
      <dt>Jobs</dt><dd>${s.queued} queued, ${s.running} running</dd>
      <dt>Pending studies</dt><dd>${s.pending_studies}</dd>`;
    drawChart(document.getElementById("throughput"), t.samples);
  }
  await draw();
  const timer = setInterval(() => { if (document.getElementById("throughput")) draw(); else clearInterval(timer); }, 10000);
  return { refresh: debounce(() => draw(), 1000), leave: () => clearInterval(timer) };
}

// -- routing between pages ---------------------------------------------------------

async function show() {
  if (currentPage && currentPage.leave) currentPage.leave();
  currentPage = null;
  pageSerial++;
  const hash = location.hash || "#/streams";
  const [, name, id] = hash.split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  const pages = { streams: streamsPage, jobs: jobsPage, studies: studiesPage, sends: sendsPage, routing: routingPage, status: statusPage };
  try {
    currentPage = name === "jobs" && id ? await jobPage(id) : await (pages[name] || streamsPage)();
  } catch (e) {
    if (e.status !== 401) main.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

async function start() {
  try {
    await showUser();
  } catch (e) {
    return; // the login dialog is open
  }
  connectEvents();
  await show();
}

window.addEventListener("hashchange", show);
start();
