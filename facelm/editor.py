"""The Annotate tab's point editor: an SVG drawn by ``gr.HTML`` (html_template + js_on_load).

Python sends the editor a value (``editor_value``): the image as a data URL, its size, the faces'
points and boxes, the scheme's point names and drawing lines. The browser draws it, lets people
drag points and box corners, select a point by click, undo/redo, zoom and pan, and sends every
finished drag back as ``{"item", "faces", "dirty": true, "seq"}``. That new value fires the
component's ``change`` event, which the app wires to its ``save_edit`` endpoint (autosave).

Coordinates are image pixels, 0-based with pixel centres at integers: the SVG's user space is
the image's, with the picture drawn from -0.5 to W-0.5, so what the browser shows and what
Python saves are the same numbers.

Faces the model is unsure about (``face_uncertainty`` above 8% NME) get an amber box.

Keyboard (when no text field has focus): ← / → or P / N previous / next image, D done and next,
Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo / redo, + / - / 0 zoom in / out / fit, Shift+arrows nudge
the selected point by one pixel, Esc deselect, L toggle point numbers. Navigation presses the
app's buttons with ids ``flm-prev``, ``flm-next`` and ``flm-done``.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

from .annotation_store import ProjectError
from .schemes import get_scheme

__all__ = ["TEMPLATE", "CSS", "JS", "editor_value", "display_data_url", "DISPLAY_MAX_SIDE"]

DISPLAY_MAX_SIDE = 1600
"""The picture sent to the browser is at most this many pixels on its long side (points keep full
resolution: the SVG stretches the picture over the image's real size)."""

# Static on purpose: gr.HTML re-renders its template on every prop change, and a template that
# does not depend on the value re-renders to the same string, which leaves the live SVG alone.
TEMPLATE = """
<div class="flm-ed empty" tabindex="0">
  <div class="flm-toolbar">
    <button type="button" data-act="undo" title="Undo (Ctrl+Z)">&#8630; Undo</button>
    <button type="button" data-act="redo" title="Redo (Ctrl+Shift+Z)">&#8631; Redo</button>
    <span class="flm-sep"></span>
    <button type="button" data-act="zoomin" title="Zoom in (+, or the mouse wheel)">+</button>
    <button type="button" data-act="zoomout" title="Zoom out (-)">&minus;</button>
    <button type="button" data-act="fit" title="Fit the image (0)">Fit</button>
    <span class="flm-zoom">100%</span>
    <span class="flm-sep"></span>
    <button type="button" data-act="labels" title="Show point numbers (L)"># Numbers</button>
    <span class="flm-grow"></span>
    <span class="flm-chip" data-status="">&nbsp;</span>
  </div>
  <div class="flm-stage">
    <svg class="flm-svg" xmlns="http://www.w3.org/2000/svg"></svg>
    <div class="flm-placeholder">Load images on the left: each one starts from the model's prediction,
      worst (most uncertain) first. Drag points to fix them.</div>
  </div>
  <div class="flm-statusbar"><span class="flm-where">&nbsp;</span><span class="flm-point">Click a point to select it</span></div>
</div>
"""

CSS = """
.flm-ed { display: flex; flex-direction: column; gap: 6px; outline: none; }
.flm-toolbar { display: flex; align-items: center; gap: 4px; flex-wrap: wrap; }
.flm-toolbar button { font: inherit; font-size: 13px; padding: 3px 10px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill);
  color: var(--button-secondary-text-color); }
.flm-toolbar button:hover { background: var(--button-secondary-background-fill-hover); }
.flm-toolbar button.on { background: var(--color-accent-soft); border-color: var(--color-accent); }
.flm-sep { width: 1px; height: 20px; background: var(--border-color-primary); margin: 0 4px; }
.flm-grow { flex: 1; }
.flm-zoom { font-size: 12px; color: var(--body-text-color-subdued); min-width: 42px; font-variant-numeric: tabular-nums; }
.flm-chip { font-size: 12px; font-weight: 600; padding: 2px 10px; border-radius: 999px; text-transform: uppercase;
  letter-spacing: .04em; background: var(--neutral-200); color: var(--neutral-700); }
.flm-chip[data-status="predicted"] { background: #fef3c7; color: #92400e; }
.flm-chip[data-status="edited"] { background: #dbeafe; color: #1e40af; }
.flm-chip[data-status="done"] { background: #dcfce7; color: #166534; }
.flm-stage { position: relative; background: #0f172a; border-radius: 10px; overflow: hidden;
  height: min(68vh, 640px); min-height: 320px; }
.flm-svg { width: 100%; height: 100%; display: block; touch-action: none; user-select: none; cursor: grab; }
.flm-svg.panning { cursor: grabbing; }
.flm-placeholder { position: absolute; inset: 0; display: none; align-items: center; justify-content: center;
  text-align: center; padding: 40px; color: #cbd5e1; font-size: 15px; line-height: 1.5; }
.flm-ed.empty .flm-placeholder { display: flex; }
.flm-ed.empty .flm-svg { visibility: hidden; }
.flm-line { fill: none; stroke: #22d3ee; stroke-opacity: .85; stroke-width: 1.5px; vector-effect: non-scaling-stroke;
  pointer-events: none; }
.flm-box { fill: transparent; stroke: #38bdf8; stroke-width: 1.5px; stroke-dasharray: 6 4;
  vector-effect: non-scaling-stroke; cursor: move; pointer-events: stroke; }
.flm-box.doubt { stroke: #f59e0b; stroke-width: 2.5px; stroke-dasharray: none; }
.flm-handle { fill: #f8fafc; stroke: #0284c7; stroke-width: 1.5px; vector-effect: non-scaling-stroke; }
.flm-handle.c0, .flm-handle.c3 { cursor: nwse-resize; }
.flm-handle.c1, .flm-handle.c2 { cursor: nesw-resize; }
.flm-pt { fill: #f43f5e; stroke: #fff; stroke-width: 1px; vector-effect: non-scaling-stroke; cursor: pointer; }
.flm-pt:hover { fill: #fb7185; }
.flm-pt.sel { fill: #facc15; stroke: #111827; stroke-width: 1.5px; }
.flm-label { fill: #fde68a; font-family: ui-monospace, monospace; pointer-events: none; paint-order: stroke;
  stroke: #0f172a; stroke-width: 2px; vector-effect: non-scaling-stroke; }
.flm-statusbar { display: flex; justify-content: space-between; gap: 12px; font-size: 13px;
  color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
"""

JS = r"""
const ed = element.querySelector('.flm-ed');
const svg = element.querySelector('.flm-svg');
const chip = element.querySelector('.flm-chip');
const where = element.querySelector('.flm-where');
const pointInfo = element.querySelector('.flm-point');
const NS = 'http://www.w3.org/2000/svg';
let S = null, hist = [], fut = [], view = null, sel = null, drag = null, seq = 0, labels = false;
let gFaces = null;

function mk(tag, attrs, parent) {
  const n = document.createElementNS(NS, tag);
  for (const k in attrs) n.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(n);
  return n;
}
function clone(faces) {
  return faces.map(f => ({points: f.points.map(p => [p[0], p[1]]), box: f.box ? f.box.slice() : null,
                         occluded: f.occluded ? f.occluded.slice() : null}));
}
function fmt(v) { return (Math.round(v * 10) / 10).toFixed(1); }
function scale() { const m = svg.getScreenCTM(); return m && m.a ? m.a : 1; }
function toImg(e) {
  const pt = svg.createSVGPoint(); pt.x = e.clientX; pt.y = e.clientY;
  const m = svg.getScreenCTM();
  const p = m ? pt.matrixTransform(m.inverse()) : pt;
  return [p.x, p.y];
}
function fit() { view = {x: -0.5, y: -0.5, w: S.width, h: S.height}; applyView(); }
function applyView() {
  svg.setAttribute('viewBox', `${view.x} ${view.y} ${view.w} ${view.h}`);
  resize();
  const z = element.querySelector('.flm-zoom');
  if (z && S) z.textContent = Math.round(100 * S.width / view.w) + '%';
}
function faceSize(f) {  // on-screen size of a face, to keep small faces' dots from piling up
  const face = S.faces[f];
  const b = face.box || [0, 0, S.width, S.height];
  return Math.max(b[2] - b[0], b[3] - b[1]) * scale();
}
function resize() {
  if (!S) return;
  const k = scale();
  svg.querySelectorAll('.flm-pt').forEach(c => {
    const r = Math.min(4.5, Math.max(1.8, 0.014 * faceSize(+c.dataset.face)));
    c.setAttribute('r', (c.classList.contains('sel') ? r + 2 : r) / k);
  });
  svg.querySelectorAll('.flm-handle').forEach(h => {
    const s = 9 / k; h.setAttribute('width', s); h.setAttribute('height', s);
    h.setAttribute('x', +h.dataset.cx - s / 2); h.setAttribute('y', +h.dataset.cy - s / 2);
  });
  svg.querySelectorAll('.flm-label').forEach(t => {
    const fs = Math.min(11, 0.035 * faceSize(+t.dataset.face));
    t.setAttribute('font-size', fs / k); t.setAttribute('dx', 0.6 * fs / k); t.setAttribute('dy', -0.4 * fs / k);
    t.style.display = fs < 6 ? 'none' : '';
  });
  svg.dataset.scale = k;
}
function linePoints(face, idx) { return idx.map(i => `${face.points[i][0]},${face.points[i][1]}`).join(' '); }

function drawFace(g, f) {
  const face = S.faces[f];
  g.innerHTML = '';
  g.setAttribute('data-face', f);
  for (const [idx, closed] of (S.lines || [])) {
    if (idx.length < 2) continue;
    mk(closed ? 'polygon' : 'polyline', {class: 'flm-line', points: linePoints(face, idx)}, g);
  }
  if (face.box) {
    const [x1, y1, x2, y2] = face.box;
    const doubt = (S.face_uncertainty || [])[f] > 0.08;
    const r = mk('rect', {class: 'flm-box' + (doubt ? ' doubt' : ''), x: x1, y: y1, width: x2 - x1, height: y2 - y1, 'data-face': f}, g);
    if (doubt) { const t = mk('title', {}, r); t.textContent = 'The model is unsure about this face: check it first'; }
    [[x1, y1], [x2, y1], [x1, y2], [x2, y2]].forEach(([cx, cy], c) => {
      const h = mk('rect', {class: 'flm-handle c' + c, 'data-face': f, 'data-corner': c}, g);
      h.dataset.cx = cx; h.dataset.cy = cy;
    });
  }
  face.points.forEach((p, i) => {
    const c = mk('circle', {class: 'flm-pt', cx: p[0], cy: p[1], r: 4, 'data-face': f, 'data-pt': i}, g);
    if (sel && sel[0] === f && sel[1] === i) c.classList.add('sel');
    if (labels) {
      const t = mk('text', {class: 'flm-label', x: p[0], y: p[1], dx: 0, dy: 0, 'data-face': f}, g);
      t.textContent = i;
    }
  });
}
function draw() {
  svg.innerHTML = '';
  if (!S) return;
  mk('image', {href: S.image, x: -0.5, y: -0.5, width: S.width, height: S.height, preserveAspectRatio: 'none'}, svg);
  gFaces = mk('g', {class: 'flm-faces'}, svg);
  S.faces.forEach((_, f) => drawFace(mk('g', {}, gFaces), f));
  resize();
}
function redrawFace(f) {
  const g = gFaces && gFaces.children[f];
  if (g) { drawFace(g, f); resize(); }
}
function info() {
  if (!S) { where.textContent = '\u00a0'; chip.textContent = '\u00a0'; chip.dataset.status = ''; return; }
  where.textContent = `Image ${S.index + 1} of ${S.count} \u00b7 ${S.name} \u00b7 ${S.width}\u00d7${S.height}px`
    + ` \u00b7 uncertainty ${S.uncertainty == null ? '\u2014' : (100 * S.uncertainty).toFixed(1) + '%'}`;
  chip.textContent = S.status; chip.dataset.status = S.status;
  if (sel && S.faces[sel[0]]) {
    const p = S.faces[sel[0]].points[sel[1]];
    const name = (S.names || [])[sel[1]] || '';
    pointInfo.textContent = `Face ${sel[0] + 1} \u00b7 point ${sel[1]} ${name} \u00b7 x ${fmt(p[0])}, y ${fmt(p[1])}`;
  } else {
    pointInfo.textContent = S.faces.length ? 'Click a point to select it; drag to move it' : 'No face';
  }
}
function select(s) {
  sel = s;
  svg.querySelectorAll('.flm-pt.sel').forEach(c => c.classList.remove('sel'));
  if (s) {
    const c = svg.querySelector(`.flm-pt[data-face="${s[0]}"][data-pt="${s[1]}"]`);
    if (c) { c.classList.add('sel'); c.parentNode.appendChild(c); }
  }
  resize(); info();
}
function send() {
  seq += 1;
  if (S.status === 'predicted') S.status = 'edited';
  props.value = {item: S.item, project: S.project, revision: S.revision, faces: clone(S.faces), dirty: true, seq: seq, op: 'edit'};
  info();
}
function commit(before) { hist.push(before); if (hist.length > 200) hist.shift(); fut = []; send(); }
function undo() { if (!S || !hist.length) return; fut.push(clone(S.faces)); S.faces = hist.pop(); draw(); select(sel); send(); }
function redo() { if (!S || !fut.length) return; hist.push(clone(S.faces)); S.faces = fut.pop(); draw(); select(sel); send(); }
function zoom(factor, cx, cy) {
  if (!S) return;
  if (cx === undefined) { cx = view.x + view.w / 2; cy = view.y + view.h / 2; }
  const w = Math.min(Math.max(view.w / factor, S.width / 40), S.width * 1.5);
  const f = view.w / w;
  view = {x: cx - (cx - view.x) / f, y: cy - (cy - view.y) / f, w: w, h: view.h / f};
  applyView();
}
function load(v) {
  if (!v || !v.item || !v.image) { S = null; ed.classList.add('empty'); svg.innerHTML = ''; info(); return; }
  ed.classList.remove('empty');
  const same = S && S.item === v.item && S.project === v.project;
  if (same) {  // the same image again (re-predicted, marked done): keep the view, make the change undoable
    if (JSON.stringify(S.faces) !== JSON.stringify(v.faces)) { hist.push(clone(S.faces)); fut = []; }
  } else { hist = []; fut = []; sel = null; }
  drag = null;
  S = Object.assign({}, v, {faces: clone(v.faces || [])});
  if (!same || !view) fit(); else applyView();
  draw(); select(sel && S.faces[sel[0]] ? sel : null);
}

svg.addEventListener('pointerdown', e => {
  if (!S || e.button > 0) return;
  const t = e.target, p = toImg(e);
  const f = t.dataset ? +t.dataset.face : NaN;
  if (t.classList.contains('flm-pt')) {
    const i = +t.dataset.pt;
    select([f, i]);
    drag = {kind: 'pt', f: f, i: i, start: p, orig: S.faces[f].points[i].slice(), before: clone(S.faces), moved: false};
  } else if (t.classList.contains('flm-handle')) {
    drag = {kind: 'corner', f: f, c: +t.dataset.corner, start: p, orig: S.faces[f].box.slice(), before: clone(S.faces), moved: false};
  } else if (t.classList.contains('flm-box')) {
    drag = {kind: 'box', f: f, start: p, orig: S.faces[f].box.slice(), before: clone(S.faces), moved: false};
  } else {
    drag = {kind: 'pan', sx: e.clientX, sy: e.clientY, v0: Object.assign({}, view), moved: false};
    svg.classList.add('panning');
  }
  svg.setPointerCapture(e.pointerId);
  ed.focus({preventScroll: true});
  e.preventDefault();
});
svg.addEventListener('pointermove', e => {
  if (!drag) return;
  if (drag.kind === 'pan') {
    const k = scale();
    const dx = (e.clientX - drag.sx) / k, dy = (e.clientY - drag.sy) / k;
    if (Math.abs(dx) + Math.abs(dy) > 0) drag.moved = true;
    view = Object.assign({}, drag.v0, {x: drag.v0.x - dx, y: drag.v0.y - dy});
    applyView();
    return;
  }
  const p = toImg(e), dx = p[0] - drag.start[0], dy = p[1] - drag.start[1];
  drag.moved = drag.moved || dx !== 0 || dy !== 0;
  const face = S.faces[drag.f];
  if (drag.kind === 'pt') {
    face.points[drag.i] = [drag.orig[0] + dx, drag.orig[1] + dy];
  } else if (drag.kind === 'box') {
    face.box = [drag.orig[0] + dx, drag.orig[1] + dy, drag.orig[2] + dx, drag.orig[3] + dy];
  } else {
    const b = drag.orig.slice(), c = drag.c;
    if (c === 0 || c === 2) b[0] = Math.min(drag.orig[0] + dx, b[2] - 2); else b[2] = Math.max(drag.orig[2] + dx, b[0] + 2);
    if (c === 0 || c === 1) b[1] = Math.min(drag.orig[1] + dy, b[3] - 2); else b[3] = Math.max(drag.orig[3] + dy, b[1] + 2);
    face.box = b;
  }
  redrawFace(drag.f);
  if (drag.kind === 'pt') select([drag.f, drag.i]);
});
function endDrag(e) {
  if (!drag) return;
  const d = drag; drag = null;
  svg.classList.remove('panning');
  if (d.kind === 'pan') { if (!d.moved) select(null); return; }
  if (d.moved) commit(d.before);
}
svg.addEventListener('pointerup', endDrag);
svg.addEventListener('pointercancel', endDrag);
svg.addEventListener('wheel', e => {
  if (!S) return;
  e.preventDefault();
  const p = toImg(e);
  zoom(e.deltaY < 0 ? 1.25 : 0.8, p[0], p[1]);
}, {passive: false});
element.querySelectorAll('.flm-toolbar button').forEach(b => b.addEventListener('click', () => {
  const a = b.dataset.act;
  if (a === 'undo') undo(); else if (a === 'redo') redo();
  else if (a === 'zoomin') zoom(1.25); else if (a === 'zoomout') zoom(0.8);
  else if (a === 'fit' && S) fit();
  else if (a === 'labels') { labels = !labels; b.classList.toggle('on', labels); draw(); select(sel); }
}));
new ResizeObserver(() => resize()).observe(svg);

function press(id) { const b = document.getElementById(id); if (b) b.click(); }
function onKey(e) {
  if (!S || ed.offsetParent === null) return;
  const t = e.target, tag = (t && t.tagName) || '';
  if (/^(INPUT|TEXTAREA|SELECT)$/.test(tag) || (t && t.isContentEditable)) return;
  const mod = e.ctrlKey || e.metaKey, k = e.key;
  let done = true;
  if (mod && (k === 'z' || k === 'Z')) { e.shiftKey ? redo() : undo(); }
  else if (mod && (k === 'y' || k === 'Y')) redo();
  else if (mod) done = false;
  else if (e.shiftKey && sel && k.startsWith('Arrow')) {
    const before = clone(S.faces), p = S.faces[sel[0]].points[sel[1]];
    if (k === 'ArrowLeft') p[0] -= 1; else if (k === 'ArrowRight') p[0] += 1;
    else if (k === 'ArrowUp') p[1] -= 1; else p[1] += 1;
    redrawFace(sel[0]); select(sel); commit(before);
  }
  else if (k === 'ArrowRight' || k === 'n' || k === 'N') press('flm-next');
  else if (k === 'ArrowLeft' || k === 'p' || k === 'P') press('flm-prev');
  else if (k === 'd' || k === 'D') press('flm-done');
  else if (k === '+' || k === '=') zoom(1.25);
  else if (k === '-' || k === '_') zoom(0.8);
  else if (k === '0') fit();
  else if (k === 'Escape') select(null);
  else if (k === 'l' || k === 'L') element.querySelector('[data-act="labels"]').click();
  else done = false;
  if (done) e.preventDefault();
}
if (window.__flmKeyHandler) document.removeEventListener('keydown', window.__flmKeyHandler);
window.__flmKeyHandler = onKey;
document.addEventListener('keydown', onKey);

watch('value', () => load(props.value));
load(props.value);
"""


def display_data_url(path: str | Path, max_side: int = DISPLAY_MAX_SIDE) -> str:
    """The image as a ``data:`` URL for the browser, downscaled to ``max_side`` when larger."""
    with Image.open(path) as im:
        from PIL import ImageOps
        im = ImageOps.exif_transpose(im).convert("RGB")
        if max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def editor_value(project: str, item, index: int, count: int, image_path: str | Path, scheme: str,
                 done: int = 0, message: str = "") -> dict:
    """What the editor draws for one project item (see the module docstring)."""
    sch = get_scheme(scheme)
    lines = [[list(idx), bool(closed)] for _, idx, closed in sch.connections]
    return {
        "project": project, "item": item.id, "revision": int(item.revision), "name": item.name,
        "index": int(index), "count": int(count), "done": int(done), "status": item.status,
        "uncertainty": item.uncertainty, "width": int(item.width), "height": int(item.height),
        "image": display_data_url(image_path), "faces": [{**f, "score": None} for f in item.faces],
        "face_uncertainty": list(item.face_uncertainty or []),
        "names": list(sch.names), "lines": lines, "parts": _scheme_parts(sch), "dirty": False, "message": message,
    }


def _scheme_parts(sch) -> dict[str, list[int]]:
    """Point indices of each part the editor can select as a whole (empty for schemes without it)."""
    groups = {"jaw": ("jaw",), "brows": ("brow",), "eyes": ("eye",), "nose": ("nose",), "mouth": ("mouth", "lip")}
    return {part: [i for i, n in enumerate(sch.names) if any(w in n for w in words)]
            for part, words in groups.items()}


def faces_from_value(value: dict | None) -> list[dict]:
    """The faces of an editor value, as plain lists (for ``Project.save_faces``, which validates the
    points). A value without faces gives ``[]``; malformed faces raise rather than read as "no faces",
    which would wipe the saved points."""
    if not isinstance(value, dict) or value.get("faces") is None:
        return []
    faces = value["faces"]
    if not isinstance(faces, list) or not all(isinstance(f, dict) for f in faces):
        raise ProjectError("editor value: 'faces' must be a list of {'points': [[x, y], ...], 'box': ...}")
    return [{"points": f.get("points"), "box": f.get("box"), "occluded": f.get("occluded")} for f in faces]
