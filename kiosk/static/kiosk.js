// The kiosk page: upload or watch, show the result, keep a strip of recent results.
// Every text from the server goes through textContent (file names are untrusted).
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let latestSeen = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bars(container, probabilities, top) {
  container.replaceChildren();
  for (const [name, p] of Object.entries(probabilities)) {
    const row = el("div", name === top ? "bar top" : "bar");
    const track = el("div", "track");
    const fill = el("div", "fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    row.append(el("span", "", name), track, el("span", "", `${(100 * p).toFixed(1)}%`));
    container.append(row);
  }
}

function show(entry) {
  const record = entry.record;
  $("result").hidden = false;
  $("name").textContent = `${record.path} (${entry.source}, ${entry.time})`;
  $("error").hidden = !record.error;
  $("error").textContent = record.error || "";
  $("warning").hidden = !record.warning;
  $("warning").textContent = record.warning ? `Warning: ${record.warning}` : "";
  $("latency").textContent = `${entry.latency_ms.toFixed(1)} ms on this device (${model ? model.precision : ""})`;
  // What the model card says against trusting this model, beside every result (not only in the card).
  $("caveat").hidden = !(model && model.caveat);
  $("caveat").textContent = model && model.caveat ? `Model card: ${model.caveat}` : "";
  const images = entry.images || { tile: "", overlays: {} };
  $("tile").src = images.tile || "";
  const stages = Object.keys(images.overlays || {});
  const shown = stages[stages.length - 1];
  $("overlay").src = shown ? images.overlays[shown] : "";
  $("overlay-caption").textContent = shown ? `Grad-CAM (${shown})` : "Grad-CAM";
  if (record.label) {
    $("label").textContent = record.label;
    bars($("bars"), record.probabilities, record.label);
  } else {
    $("label").textContent = "no result";
    $("bars").replaceChildren();
  }
  $("subtype-block").hidden = !record.subtype;
  if (record.subtype) {
    $("subtype").textContent = `${record.subtype} (${record.subtype_stage})`;
    bars($("subtype-bars"), record.subtype_probabilities, record.subtype);
  }
  const maps = $("stage-maps");
  maps.replaceChildren();
  if (stages.length > 1) {
    for (const stage of stages) {
      const figure = el("figure");
      const img = el("img");
      img.src = images.overlays[stage];
      img.alt = `Grad-CAM of ${stage}`;
      figure.append(img, el("figcaption", "", stage));
      maps.append(figure);
    }
  }
  document.querySelectorAll(".history button").forEach((b) => {
    b.classList.toggle("current", Number(b.dataset.id) === entry.id);
  });
}

async function refreshHistory() {
  const response = await fetch("/api/history");
  if (!response.ok) return;
  const items = await response.json();
  const strip = $("history");
  strip.replaceChildren();
  for (const item of items) {
    const button = el("button");
    button.type = "button";
    button.dataset.id = item.id;
    button.title = item.name;
    button.append(el("span", "", item.subtype ? `${item.label} · ${item.subtype}` : (item.label || "error")),
                  el("span", "muted", item.time));
    button.addEventListener("click", () => review(item.id));
    strip.append(button);
  }
}

async function review(id) {
  const response = await fetch(`/api/results/${id}`);
  if (response.ok) show(await response.json());
}

function showMap(body) {
  $("result").hidden = true;
  $("map-result").hidden = false;
  $("map-image").src = body.image;
  const map = body.map;
  const tiles = map.tiles;
  const share = map.positive_fraction === null ? "-" : `${(100 * map.positive_fraction).toFixed(1)}%`;
  $("map-facts").textContent = `${body.name}: ${tiles.classified} tiles classified, ${tiles.background} background, ` +
    `${tiles.failed} failed; ${share} called ${map.positive_class}; ${body.latency_ms.toFixed(0)} ms ` +
    `(${map.tiles_per_second} tiles/s, ${map.precision})`;
  $("map-caveat").hidden = !(model && model.caveat);
  $("map-caveat").textContent = model && model.caveat ? `Model card: ${model.caveat}` : "";
}

async function mapRegion(file) {
  $("status").textContent = `Mapping ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/api/map", { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) {
      $("status").textContent = `${file.name}: ${body.error}`;
      return;
    }
    $("status").textContent = "";
    showMap(body);
  } catch (error) {
    $("status").textContent = `Could not reach the kiosk server (${error})`;
  }
}

async function upload(file) {
  if (!file) return;
  if ($("map-mode").checked) return mapRegion(file);
  $("map-result").hidden = true;
  $("status").textContent = `Classifying ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  let body;
  try {
    const response = await fetch("/api/classify", { method: "POST", body: form });
    body = await response.json();
    if (!response.ok) {
      $("status").textContent = `${file.name}: ${body.error}`;
      return;
    }
  } catch (error) {
    $("status").textContent = `Could not reach the kiosk server (${error})`;
    return;
  }
  $("status").textContent = "";
  latestSeen = body.id;
  await refreshHistory();
  show(body);
}

async function pollWatch() {
  try {
    const response = await fetch("/api/latest");
    const { id } = await response.json();
    if (id !== null && id !== latestSeen) {
      latestSeen = id;
      await refreshHistory();
      await review(id);
    }
  } catch (error) {
    $("status").textContent = "Lost contact with the kiosk server; retrying…";
  }
}

async function start() {
  const response = await fetch("/api/model");
  model = await response.json();
  $("model-name").textContent = model.name;
  $("model-facts").textContent =
    `${model.task} · ${model.precision} · sha256 ${model.sha256.slice(0, 12)} · ${model.version}`;
  $("card-link").hidden = !model.has_model_card;
  $("intended-use").textContent = model.intended_use;
  const banner = $("banner");
  banner.hidden = false;
  if (model.verification.passed) {
    banner.className = "banner ok";
    banner.textContent = `Verified on this device (${model.verification.cpu}): golden outputs match.`;
  } else {
    banner.className = "banner failed";
    const detail = model.verification.error || `failed: ${model.verification.failed_gates.join(", ")}`;
    banner.textContent = `This model FAILED its check on this device; results are withheld. ${detail}`;
  }
  $("watching").hidden = !model.watching;
  $("file").addEventListener("change", (event) => upload(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload(event.dataTransfer.files[0]);
  });
  await refreshHistory();
  if (model.watching) {
    await pollWatch();
    setInterval(pollWatch, 1500);
  }
}

start();
