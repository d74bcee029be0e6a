// The page of mnist_flax.serve: draw on the pad (mouse, pen, finger) or drop a photo; each
// picture goes to POST /api/predict (the objects `infer --json` prints, plus the 28x28 image
// the model saw) and the answer is shown. No library, nothing fetched but this server's API.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
// The answer follows the drawing without a request per mouse move: one at most every
// THROTTLE_MS while the pen moves, and one when it rests for DEBOUNCE_MS.
const DEBOUNCE_MS = 150;
const THROTTLE_MS = 300;
const API = "api/predict?top_k=3&seen=true";

let drawing = null; // {x, y} of the last point while a stroke is under way
let inked = false;
let timer = 0;
let sent = 0; // Answers to older requests than the latest are dropped.
let lastSent = 0;

function blank() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return { x: (e.clientX - r.left) * pad.width / r.width,
           y: (e.clientY - r.top) * pad.height / r.height };
}

function stroke(from, to, e) {
  // A marker: round, about a fourteenth of the pad; a pen's pressure thins or thickens it.
  const pressure = e.pointerType === "pen" && e.pressure > 0 ? 0.6 + 0.8 * e.pressure : 1;
  ctx.strokeStyle = "#111";
  ctx.lineWidth = pad.width / 14 * pressure;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  drawing = point(e);
  stroke(drawing, drawing, e);
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = point(ev);
    stroke(drawing, p, ev);
    drawing = p;
  }
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = null;
    schedule();
  });
}

function sendPad() {
  lastSent = performance.now();
  if (inked) pad.toBlob((blob) => blob && send(blob, "drawing.png"), "image/png");
}

function schedule() {
  clearTimeout(timer);
  if (drawing && performance.now() - lastSent > THROTTLE_MS) sendPad();
  timer = setTimeout(sendPad, DEBOUNCE_MS);
}

$("clear").addEventListener("click", () => {
  clearTimeout(timer);
  sent++; // An answer still on its way is for the old drawing.
  blank();
  showPhoto(null);
  reset("Draw a digit");
});

// --- Photos: the file picker and the drop zone ---------------------------------------------

const drop = $("drop");
$("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) upload(file);
  e.target.value = ""; // The same file chosen again is sent again.
});
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  const file = e.dataTransfer.files[0];
  if (file) upload(file);
});
// A photo dropped beside the zone is read too, instead of the browser leaving the page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => {
  e.preventDefault();
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});

let photoUrl = null;

function showPhoto(file) {
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = file ? URL.createObjectURL(file) : null;
  $("photo").hidden = !file;
  $("boxes").innerHTML = "";
  if (file) {
    $("photo-img").src = photoUrl;
    $("photo-name").textContent = file.name;
  } else {
    $("photo-img").removeAttribute("src");
  }
}

function upload(file) {
  clearTimeout(timer);
  blank();
  showPhoto(file);
  reset("Reading " + file.name + " ...");
  send(file, file.name);
}

// --- Asking the server and showing the answer ----------------------------------------------

async function send(blob, name) {
  const mine = ++sent;
  const form = new FormData();
  form.append("file", blob, name);
  let status, body;
  try {
    const response = await fetch(API, { method: "POST", body: form });
    status = response.status;
    body = await response.json();
  } catch (err) {
    if (mine === sent) reset("?", "The server did not answer (" + err.message + ").");
    return;
  }
  if (mine !== sent) return;
  if (status !== 200) {
    const first = body.results && body.results[0];
    reset("The picture was refused.", body.error || "HTTP " + status);
    if (first) showDigits(first);
    return;
  }
  show(body[0]);
}

function reset(text, message) {
  $("answer").textContent = "?";
  $("probability").textContent = text || "";
  $("message").textContent = message || "";
  $("bars").innerHTML = "";
  $("digits").innerHTML = "";
  $("digits").hidden = true;
  $("seen").innerHTML = "";
}

function show(result) {
  reset();
  if (result.digit === null && result.number == null) {
    $("answer").textContent = "–";
    $("probability").textContent = /no digit/i.test(result.error || "")
      ? "No digit found." : "Not read.";
    $("message").textContent = result.error || "";
    return;
  }
  const isNumber = Array.isArray(result.digits) && result.digits.length > 1;
  $("answer").textContent = isNumber ? String(result.number) : String(result.digit);
  $("probability").textContent = "probability " + Number(result.probability).toFixed(3);
  for (const [digit, p] of result.top_k || []) {
    if (isNumber) break; // A number's runners-up are per digit, below.
    const li = document.createElement("li");
    const pct = Math.max(0, Math.min(100, 100 * p));
    li.innerHTML = `<b>${Number(digit)}</b><div class="bar"><span style="width:${pct}%"></span>` +
                   `</div><span>${Number(p).toFixed(3)}</span>`;
    $("bars").appendChild(li);
  }
  showDigits(result);
}

function image(src, label) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = label;
  img.width = 112;
  img.height = 112;
  return img;
}

function showDigits(result) {
  // The 28x28 the model saw; for a number, each digit with its probability and its own 28x28.
  // Every digit's box is drawn over the photo.
  const digits = Array.isArray(result.digits) ? result.digits : [];
  const seen = $("seen");
  const number = digits.length > 1;
  const own = number && digits.every((d) => typeof d.seen === "string");
  if (typeof result.seen === "string") seen.appendChild(image(result.seen, "28x28 input"));
  else if (Array.isArray(result.seen) && !own) result.seen.forEach((s, i) => seen.appendChild(
    image(s, "28x28 input of digit " + (i + 1))));
  if (number) {
    const list = $("digits");
    list.hidden = false;
    digits.forEach((d, i) => {
      const li = document.createElement("li");
      li.textContent = `${d.digit} (${Number(d.probability).toFixed(3)})`;
      list.appendChild(li);
      if (own) seen.appendChild(image(d.seen, `28x28 of digit ${i + 1}`));
    });
  }
  if (digits.some((d) => d.box) && !$("photo").hidden) drawBoxes(digits);
}

function box(b, w, h) {
  // [left, top, right, bottom] in pixels of the photo (fractions when all are <= 1), or an
  // object with left/top/right/bottom or x/y/width/height.
  let x0, y0, x1, y1;
  if (Array.isArray(b)) [x0, y0, x1, y1] = b;
  else if (b && "left" in b) ({ left: x0, top: y0 } = b), x1 = b.right ?? x0 + b.width,
    y1 = b.bottom ?? y0 + b.height;
  else if (b && "x" in b) x0 = b.x, y0 = b.y, x1 = b.x + b.width, y1 = b.y + b.height;
  else return null;
  if (Math.max(x0, y0, x1, y1) <= 1) x0 *= w, x1 *= w, y0 *= h, y1 *= h;
  return [x0, y0, x1 - x0, y1 - y0];
}

function drawBoxes(digits) {
  const img = $("photo-img");
  const svg = $("boxes");
  const draw = () => {
    const w = img.naturalWidth, h = img.naturalHeight;
    if (!w || !h) return;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.innerHTML = "";
    for (const d of digits) {
      const r = box(d.box, w, h);
      if (!r) continue;
      const ns = "http://www.w3.org/2000/svg";
      const rect = document.createElementNS(ns, "rect");
      ["x", "y", "width", "height"].forEach((k, i) => rect.setAttribute(k, r[i]));
      const text = document.createElementNS(ns, "text");
      text.setAttribute("x", r[0]);
      text.setAttribute("y", Math.max(r[1] - 4, 12));
      text.setAttribute("font-size", Math.max(12, h / 16));
      text.textContent = d.digit;
      svg.append(rect, text);
    }
  };
  if (img.complete) draw(); else img.addEventListener("load", draw, { once: true });
}

blank();
