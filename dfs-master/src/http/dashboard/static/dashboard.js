// The dfs dashboard's script: no framework and nothing loaded from elsewhere.
//
// * Parts of a page marked `data-refresh="ms"` are re-read from the same address and swapped
//   in place, so a page stays current without a reload.
// * `#charts` draws this master's history (`/api/v1/history`) on canvases.
// * Upload, delete and decommission call the JSON API, after a confirmation where data or a
//   server is at stake; buttons are found by delegation, so swapped-in parts work too.
"use strict";

// ---- Refreshing parts of a page ------------------------------------------------------------

/** Re-reads this page and replaces the element with id `id` by its new version. */
async function refreshPart(id) {
  const reply = await fetch(location.href, { cache: "no-store" });
  if (!reply.ok) throw new Error("HTTP " + reply.status);
  const fresh = new DOMParser().parseFromString(await reply.text(), "text/html");
  const next = fresh.getElementById(id);
  const current = document.getElementById(id);
  if (next && current) current.innerHTML = next.innerHTML;
  document.body.dataset.refreshed = String(Date.now());
}

function startRefreshing() {
  for (const part of document.querySelectorAll("[data-refresh]")) {
    const every = Number(part.dataset.refresh) || 5000;
    const tick = () => refreshPart(part.id)
      .then(() => part.classList.remove("stale-view"))
      .catch(() => part.classList.add("stale-view"))
      .finally(() => setTimeout(tick, every));
    setTimeout(tick, every);
  }
}

// ---- Calls of the JSON API -----------------------------------------------------------------

/** The API address of `path` under `prefix` (`files` or `dirs`), each name encoded. */
function apiPath(prefix, path) {
  const names = path.split("/").filter((n) => n.length > 0).map(encodeURIComponent);
  return "/api/v1/" + prefix + "/" + names.join("/");
}

/** The message of a failed API reply (`{"error": {"message": …}}`), or its status. */
function failure(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return "HTTP " + status + (text ? ": " + text.slice(0, 200) : "");
}

function say(text, isError) {
  const status = document.getElementById("action-status");
  if (!status) return;
  status.textContent = text;
  status.classList.toggle("warn", Boolean(isError));
}

async function deleteEntry(button) {
  const path = button.dataset.path;
  const kind = button.dataset.kind === "dir" ? "directory" : "file";
  if (!window.confirm("Delete the " + kind + " " + path + "? This cannot be undone.")) {
    say("Not deleted: " + path);
    return;
  }
  const reply = await fetch(apiPath(kind === "file" ? "files" : "dirs", path), { method: "DELETE" });
  if (!reply.ok) {
    say("Could not delete " + path + ": " + failure(reply.status, await reply.text()), true);
    return;
  }
  if (button.dataset.then) {
    location.href = button.dataset.then;
    return;
  }
  say("Deleted " + path);
  if (document.getElementById("listing")) await refreshPart("listing");
}

async function decommission(button) {
  const addr = button.dataset.addr;
  const question = "Decommission chunkserver " + addr + "? Its replicas are copied elsewhere, " +
    "then it takes no more data.";
  if (!window.confirm(question)) return;
  const reply = await fetch("/api/v1/servers/" + encodeURIComponent(addr) + "/decommission",
    { method: "POST" });
  if (!reply.ok) {
    say("Could not decommission " + addr + ": " + failure(reply.status, await reply.text()), true);
    return;
  }
  say("Decommissioning " + addr);
  await refreshPart("servers");
}

/** Sends the chosen file into the listed directory with a PUT, showing its progress. */
function upload(button) {
  const input = document.getElementById("upload-file");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const file = input.files && input.files[0];
  if (!file) {
    status.textContent = "Choose a file first.";
    return;
  }
  const dir = button.dataset.dir || "/";
  const path = (dir === "/" ? "" : dir) + "/" + file.name;
  const request = new XMLHttpRequest();
  request.open("PUT", apiPath("files", path));
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) bar.value = Math.floor((event.loaded * 100) / event.total);
  };
  request.onload = () => {
    if (request.status >= 200 && request.status < 300) {
      bar.value = 100;
      status.textContent = "Uploaded " + path + " (" + file.size + " bytes)";
      status.dataset.done = "ok";
      refreshPart("listing").catch(() => {});
    } else {
      status.textContent = "Upload failed: " + failure(request.status, request.responseText);
      status.dataset.done = "error";
    }
    button.disabled = false;
  };
  request.onerror = () => {
    status.textContent = "Upload failed: the master did not answer.";
    status.dataset.done = "error";
    button.disabled = false;
  };
  bar.value = 0;
  delete status.dataset.done;
  status.textContent = "Uploading " + file.name + "…";
  button.disabled = true;
  request.send(file);
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  let action = null;
  if (target.classList.contains("delete")) action = deleteEntry(target);
  else if (target.classList.contains("decommission")) action = decommission(target);
  else if (target.id === "upload-button") upload(target);
  if (action) action.catch((err) => say(String(err), true));
});

// ---- Charts --------------------------------------------------------------------------------

const COLORS = ["#2f6fdf", "#c0392b", "#2e8b57", "#c98a00"];

/** `value` in a short form: thousands as k, M, G (1024-based for byte rates). */
function short(value, bytes) {
  const base = bytes ? 1024 : 1000;
  const units = bytes ? ["B", "KiB", "MiB", "GiB", "TiB"] : ["", "k", "M", "G", "T"];
  let unit = 0;
  while (Math.abs(value) >= base && unit + 1 < units.length) { value /= base; unit += 1; }
  const digits = Number.isInteger(value) || value >= 100 ? 0 : value >= 1 ? 1 : 2;
  const text = value.toFixed(digits);
  return text + (units[unit] ? " " + units[unit] : "");
}

/** Draws `fields` of `samples` into `figure`'s canvas: a line per field and a legend. */
function drawChart(figure, samples) {
  const canvas = figure.querySelector("canvas");
  const fields = figure.dataset.fields.split(",");
  const labels = figure.dataset.labels.split(",");
  const bytes = figure.id === "chart-throughput";
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const left = 62, right = 10, top = 22, bottom = 22;
  const now = Date.now();
  const start = samples.length ? Math.min(samples[0].time_ms, now - 60000) : now - 60000;
  let max = 0;
  for (const s of samples) for (const f of fields) if (s[f] != null) max = Math.max(max, s[f]);
  max = max > 0 ? max * 1.15 : 1;
  const x = (t) => left + ((t - start) / (now - start)) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  g.font = "11px system-ui, sans-serif";
  g.strokeStyle = "#e3e6eb";
  g.fillStyle = "#5c6778";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const v = (max * i) / 4;
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(width - right, y(v)); g.stroke();
    g.fillText(short(v, bytes), 4, y(v) + 4);
  }
  const minutes = Math.round((now - start) / 60000);
  g.fillText(minutes >= 1 ? minutes + " min ago" : "1 min ago", left, height - 6);
  g.fillText("now", width - right - 22, height - 6);
  fields.forEach((field, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.lineWidth = 1.8;
    g.beginPath();
    let drawing = false;
    for (const s of samples) {
      const v = s[field];
      if (v == null) { drawing = false; continue; }
      if (drawing) g.lineTo(x(s.time_ms), y(v)); else g.moveTo(x(s.time_ms), y(v));
      drawing = true;
    }
    g.stroke();
    const last = samples.length ? samples[samples.length - 1][field] : null;
    const legend = labels[i] + (last != null ? " " + short(last, bytes) : "");
    g.fillStyle = COLORS[i % COLORS.length];
    g.fillText(legend, left + 8 + i * 110, 13);
  });
  figure.dataset.points = String(samples.length);
}

/** Keeps `#charts` drawn from this master's history, fetching only new samples. */
function startCharts() {
  const charts = document.getElementById("charts");
  if (!charts) return;
  const every = Math.max(Number(charts.dataset.interval) || 10000, 1000);
  let samples = [];
  const tick = async () => {
    const since = samples.length ? samples[samples.length - 1].time_ms : 0;
    try {
      const reply = await fetch(charts.dataset.history + "?since=" + since, { cache: "no-store" });
      if (!reply.ok) throw new Error("HTTP " + reply.status);
      const history = await reply.json();
      samples = samples.concat(history.samples);
      const oldest = Date.now() - 3600 * 1000;
      samples = samples.filter((s) => s.time_ms >= oldest);
      charts.dataset.samples = String(samples.length);
      charts.classList.remove("stale-view");
    } catch (_) {
      charts.classList.add("stale-view");
    }
    for (const figure of charts.querySelectorAll("figure.chart")) drawChart(figure, samples);
    setTimeout(tick, every);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  startRefreshing();
  startCharts();
});
