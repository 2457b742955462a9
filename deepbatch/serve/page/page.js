// The page of `deepbatch serve`: photos dropped here go to /detect (faces boxed with landmarks and confidence), in
// the comparison slots to /verify, and, when the service has a face database, to /register and /search. Plain browser APIs only: no framework, nothing fetched from elsewhere.
"use strict";

const POINT_COLOURS = {
  left_eye: "#1a73e8", right_eye: "#1a73e8", nose: "#188038",
  mouth_left: "#e8710a", mouth_right: "#e8710a",
};

function headers() {
  const token = document.getElementById("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function post(route, fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  const response = await fetch(route, { method: "POST", body: form, headers: headers() });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || body.message || response.statusText);
  return body;
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(file.name + " is not an image the browser can show"));
    image.src = URL.createObjectURL(file);
  });
}

// Draw the photo and its faces; returns the canvas.
function drawFaces(image, faces, highlight) {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const unit = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
  faces.forEach((face, index) => {
    const area = face.facial_area;
    context.lineWidth = unit;
    context.strokeStyle = highlight === undefined || highlight === index ? "#00c853" : "#9e9e9e";
    context.strokeRect(area.x, area.y, area.w, area.h);
    for (const [name, colour] of Object.entries(POINT_COLOURS)) {
      const point = area[name];
      if (!point) continue;
      context.fillStyle = colour;
      context.beginPath();
      context.arc(point[0], point[1], unit * 1.5, 0, 2 * Math.PI);
      context.fill();
    }
    if (face.confidence !== undefined) {
      const label = (100 * face.confidence).toFixed(0) + "%";
      context.font = `bold ${unit * 8}px sans-serif`;
      const width = context.measureText(label).width + unit * 2;
      context.fillStyle = "#00c853";
      context.fillRect(area.x, Math.max(0, area.y - unit * 10), width, unit * 10);
      context.fillStyle = "#000";
      context.fillText(label, area.x + unit, Math.max(unit * 8, area.y - unit * 2));
    }
  });
  return canvas;
}

async function findFaces(file) {
  const figure = document.createElement("figure");
  figure.className = "photo";
  const caption = document.createElement("figcaption");
  caption.textContent = file.name + ": looking for faces...";
  figure.appendChild(caption);
  document.getElementById("results").prepend(figure);
  try {
    const [image, answer] = await Promise.all([loadImage(file), post("detect", { img: file })]);
    figure.insertBefore(drawFaces(image, answer.results), caption);
    const scores = answer.results.map((f) => (100 * f.confidence).toFixed(0) + "%").join(", ");
    caption.textContent = `${file.name}: ${answer.results.length} face(s)` + (scores ? ` (${scores})` : "");
    figure.dataset.faces = String(answer.results.length);
  } catch (error) {
    caption.textContent = `${file.name}: ${error.message}`;
    caption.className = "error";
    figure.dataset.faces = "error";
  }
}

const chosen = { img1: null, img2: null };

async function compare() {
  const verdict = document.getElementById("verdict");
  const pair = document.getElementById("pair");
  if (!chosen.img1 || !chosen.img2) {
    verdict.textContent = "Drop a second photo to compare.";
    return;
  }
  verdict.textContent = "Comparing...";
  verdict.className = "";
  try {
    const [first, second, answer] = await Promise.all([
      loadImage(chosen.img1), loadImage(chosen.img2), post("verify", { img1: chosen.img1, img2: chosen.img2 }),
    ]);
    pair.replaceChildren(drawFaces(first, [{ facial_area: answer.facial_areas.img1 }]),
                         drawFaces(second, [{ facial_area: answer.facial_areas.img2 }]));
    verdict.textContent = (answer.verified ? "Same person" : "Different people") +
      ` (distance ${answer.distance.toFixed(3)}, threshold ${answer.threshold}, ` +
      `confidence ${answer.confidence}%, ${answer.model})`;
    verdict.dataset.verified = String(answer.verified);
  } catch (error) {
    verdict.textContent = error.message;
    verdict.className = "error";
    verdict.dataset.verified = "error";
  }
}

function dropZone(zone, input, take) {
  zone.addEventListener("click", () => input.click());
  input.addEventListener("change", () => take(Array.from(input.files)));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    take(Array.from(event.dataTransfer.files).filter((f) => f.type.startsWith("image/") || f.type === ""));
  });
}

dropZone(document.getElementById("drop"), document.getElementById("files"), (files) => files.forEach(findFaces));
for (const side of ["img1", "img2"]) {
  const zone = document.getElementById(side === "img1" ? "drop1" : "drop2");
  const input = document.getElementById(side === "img1" ? "file1" : "file2");
  dropZone(zone, input, (files) => {
    if (!files.length) return;
    chosen[side] = files[0];
    zone.firstChild.textContent = files[0].name + " ";
    compare();
  });
}

// The face database panel, shown when /health says the service has one.
async function registerPhoto(file) {
  const line = document.createElement("li");
  line.textContent = file.name + ": registering...";
  document.getElementById("registered").prepend(line);
  try {
    const answer = await post("register", { img: file, img_name: file.name });
    if (answer.skipped) line.textContent = `${file.name}: registered before`;
    else if (answer.errors.length) throw new Error(answer.errors[0].error);
    else line.textContent = `${file.name}: ${answer.inserted} face(s) registered`;
    line.dataset.inserted = String(answer.inserted);
  } catch (error) {
    line.textContent = `${file.name}: ${error.message}`;
    line.className = "error";
    line.dataset.inserted = "error";
  }
}

async function searchPhoto(file) {
  const matches = document.getElementById("matches");
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = file.name + ": searching...";
  figure.appendChild(caption);
  matches.replaceChildren(figure);
  try {
    const [image, answer] = await Promise.all([loadImage(file), post("search", { img: file, k: 5 })]);
    const faces = answer.results.filter((table) => table.length).map((table) => ({ facial_area: {
      x: table[0].source_x, y: table[0].source_y, w: table[0].source_w, h: table[0].source_h } }));
    figure.insertBefore(drawFaces(image, faces), caption);
    caption.textContent = `${file.name}: ${answer.results.length} face(s), ${faces.length} with a match`;
    answer.results.forEach((table, index) => {
      const list = document.createElement("ol");
      list.dataset.face = String(index);
      if (!table.length) list.textContent = `face ${index + 1}: no registered face matches`;
      for (const row of table) {
        const item = document.createElement("li");
        item.textContent = `${row.img_name} (distance ${row.distance.toFixed(3)}, confidence ${row.confidence}%)`;
        item.dataset.name = row.img_name;
        list.appendChild(item);
      }
      figure.appendChild(list);
    });
    figure.dataset.faces = String(answer.results.length);
  } catch (error) {
    caption.textContent = `${file.name}: ${error.message}`;
    caption.className = "error";
    figure.dataset.faces = "error";
  }
}

dropZone(document.getElementById("dropRegister"), document.getElementById("fileRegister"),
         (files) => files.forEach(registerPhoto));
dropZone(document.getElementById("dropSearch"), document.getElementById("fileSearch"),
         (files) => files.slice(0, 1).forEach(searchPhoto));
fetch("health").then((response) => response.json()).then((health) => {
  document.getElementById("database").hidden = !health.database;
  document.body.dataset.database = health.database || "none";
}).catch(() => {});
