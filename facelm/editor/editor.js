/* The point editor's view: draws FlmState (state.js, prepended to this file by facelm.editor) as an
 * SVG and turns pointer and key input into its edits. Runs as gr.HTML's js_on_load body, with
 * `element` (the component), `props` (props.value: the editor value in, edit messages out) and
 * `watch` in scope.
 *
 * Every drawing reads the state's current faces; nothing walks faces of a photo that is no longer
 * open: a new value first replaces the state, then everything is drawn from it.
 */
const ed = element.querySelector('.flm-ed');
const svg = element.querySelector('.flm-svg');
const chip = element.querySelector('.flm-chip');
const where = element.querySelector('.flm-where');
const nameEl = element.querySelector('.flm-name');
const pointInfo = element.querySelector('.flm-point');
const progress = element.querySelector('.flm-progress');
const msgEl = element.querySelector('.flm-msg');
const noface = element.querySelector('.flm-noface');
const NS = 'http://www.w3.org/2000/svg';
const st = new FlmState.EditorState();
let view = null, drag = null, labels = false, adding = false, hovered = null;
let gFaces = null, gOverlay = null;

function mk(tag, attrs, parent) {
  const n = document.createElementNS(NS, tag);
  for (const k in attrs) n.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(n);
  return n;
}
function btn(act) { return element.querySelector(`[data-act="${act}"]`); }
function scale() { const m = svg.getScreenCTM(); return m && m.a ? m.a : 1; }
function toImg(e) {
  const pt = svg.createSVGPoint(); pt.x = e.clientX; pt.y = e.clientY;
  const m = svg.getScreenCTM();
  const p = m ? pt.matrixTransform(m.inverse()) : pt;
  return [p.x, p.y];
}

// ------------------------------------------------------------------ view (zoom and pan)
function fit() { if (!st.loaded) return; view = {x: -0.5, y: -0.5, w: st.v.width, h: st.v.height}; applyView(); }
function applyView() {
  if (!st.loaded || !view) return;
  svg.setAttribute('viewBox', `${view.x} ${view.y} ${view.w} ${view.h}`);
  resize();
  element.querySelector('.flm-zoom').textContent = Math.round(100 * st.v.width / view.w) + '%';
}
function zoom(factor, cx, cy) {
  if (!st.loaded || !view) return;
  if (cx === undefined) { cx = view.x + view.w / 2; cy = view.y + view.h / 2; }
  const w = Math.min(Math.max(view.w / factor, st.v.width / 40), st.v.width * 1.5);
  const f = view.w / w;
  view = {x: cx - (cx - view.x) / f, y: cy - (cy - view.y) / f, w: w, h: view.h / f};
  applyView();
}

// ------------------------------------------------------------------ drawing
function faceSize(f) {  // on-screen size of a face, to keep small faces' dots from piling up
  const face = st.faces[f];
  if (!face) return 0;
  const b = face.box || [0, 0, st.v.width, st.v.height];
  return Math.max(b[2] - b[0], b[3] - b[1]) * scale();
}
function resize() {
  if (!st.loaded) return;
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
function drawFace(g, f) {
  const face = st.faces[f];
  g.innerHTML = '';
  if (!face) return;
  g.setAttribute('data-face', f);
  for (const [idx, closed] of (st.v.lines || [])) {
    if (idx.length < 2 || idx.some(i => !face.points[i])) continue;
    mk(closed ? 'polygon' : 'polyline', {class: 'flm-line', points: idx.map(i => face.points[i].join(',')).join(' ')}, g);
  }
  if (face.box) {
    const [x1, y1, x2, y2] = face.box;
    const u = st.faceUncertainty(f), doubt = u !== null && u > 0.08;
    const cls = 'flm-box' + (doubt ? ' doubt' : '') + (st.face === f ? ' chosen' : '');
    const r = mk('rect', {class: cls, x: x1, y: y1, width: x2 - x1, height: y2 - y1, 'data-face': f}, g);
    mk('title', {}, r).textContent = `Face ${f + 1}` + (doubt ? ': the model is unsure about this face, check it first' : '')
      + ' (click to select, Delete removes it)';
    [[x1, y1], [x2, y1], [x1, y2], [x2, y2]].forEach(([cx, cy], c) => {
      const h = mk('rect', {class: 'flm-handle c' + c, 'data-face': f, 'data-corner': c}, g);
      h.dataset.cx = cx; h.dataset.cy = cy;
    });
  }
  const chosen = [];
  face.points.forEach((p, i) => {
    const cls = 'flm-pt' + (face.occluded[i] ? ' occ' : '') + (st.isSelected(f, i) ? ' sel' : '');
    const c = mk('circle', {class: cls, cx: p[0], cy: p[1], r: 4, 'data-face': f, 'data-pt': i}, g);
    mk('title', {}, c).textContent = st.pointTitle(f, i);
    if (st.isSelected(f, i)) chosen.push(c);
    if (labels) mk('text', {class: 'flm-label', x: p[0], y: p[1], dx: 0, dy: 0, 'data-face': f}, g).textContent = i;
  });
  chosen.forEach(c => g.appendChild(c));  // selected points on top
}
function draw() {
  svg.innerHTML = '';
  gFaces = gOverlay = null;
  hovered = null;  // the hovered point may be gone, and a removed element sends no pointerout
  if (!st.loaded) return;
  mk('image', {href: st.v.image, x: -0.5, y: -0.5, width: st.v.width, height: st.v.height, preserveAspectRatio: 'none'}, svg);
  gFaces = mk('g', {class: 'flm-faces'}, svg);
  st.faces.forEach((_, f) => drawFace(mk('g', {}, gFaces), f));
  gOverlay = mk('g', {class: 'flm-overlay'}, svg);
  resize();
  info();
}
function redrawFaces(list) {
  if (!gFaces || gFaces.children.length !== st.faces.length) { draw(); return; }
  hovered = null;
  for (const f of list) drawFace(gFaces.children[f], f);
  resize();
  info();
}
function info() {
  ed.classList.toggle('empty', !st.loaded);
  ed.classList.toggle('noface', st.loaded && !st.faces.length);
  svg.classList.toggle('adding', adding);
  btn('addface').classList.toggle('on', adding);
  btn('delface').disabled = st.selectedFace() === null;
  btn('occluded').disabled = !st.sel.length;
  btn('undo').disabled = !st.hist.length;
  btn('redo').disabled = !st.fut.length;
  msgEl.textContent = st.message;
  msgEl.classList.toggle('on', !!st.message);
  if (!st.loaded) {
    where.textContent = '\u00a0'; nameEl.textContent = ''; nameEl.title = ''; progress.textContent = '';
    chip.textContent = '\u00a0'; chip.dataset.status = ''; pointInfo.textContent = ''; noface.textContent = '';
    return;
  }
  const v = st.v;
  where.textContent = `${st.whereText()} \u00b7 ${v.width}\u00d7${v.height}px \u00b7 uncertainty ${st.uncertaintyText()}`
    + ` \u00b7 ${st.faces.length} face${st.faces.length === 1 ? '' : 's'}`;
  nameEl.textContent = v.name || '';
  nameEl.title = v.name || '';
  progress.textContent = st.progressText();
  chip.textContent = v.status || '\u00a0'; chip.dataset.status = v.status || '';
  noface.textContent = st.noFaceText();
  pointInfo.textContent = hovered ? hovered : (adding ? 'Draw the new face\u2019s box on the photo (Esc cancels)' : st.selectionText());
}
function setAdding(on) { adding = !!on && st.loaded; info(); }

// ------------------------------------------------------------------ talking to the server
function send(msg) {
  if (!msg) return;
  props.value = msg;
}
function load(v) {
  const what = st.load(v);
  if (what === 'ignored' || what === 'stale') return;
  if (what === 'same') { info(); return; }
  if (what === 'resend') { send(st.resend()); info(); return; }
  endDrag(null);  // a drag begun on the faces that were just replaced is void
  hovered = null;
  if (what === 'empty') { adding = false; view = null; draw(); info(); return; }
  if (what === 'new') adding = false;
  draw();
  if (what === 'new' || !view) fit();
}

// ------------------------------------------------------------------ pointer input
function overlayRect(cls, a, b) {
  if (!gOverlay) return;
  gOverlay.innerHTML = '';
  mk('rect', {class: cls, x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]),
              width: Math.abs(b[0] - a[0]), height: Math.abs(b[1] - a[1])}, gOverlay);
}
svg.addEventListener('pointerdown', e => {
  if (!st.loaded || e.button > 0) return;
  const t = e.target, p = toImg(e);
  const f = t.dataset && t.dataset.face !== undefined ? +t.dataset.face : NaN;
  if (t.classList.contains('flm-pt') && !adding) {
    const i = +t.dataset.pt;
    if (e.shiftKey) st.selectPoint(f, i, true);
    else if (!st.isSelected(f, i)) st.selectPoint(f, i, false);
    else st.face = f;
    redrawFaces(st.faces.map((_, g) => g));
    drag = st.isSelected(f, i) ? {token: st.dragStart('points'), start: p} : null;
  } else if (t.classList.contains('flm-handle') && !adding) {
    drag = {token: st.dragStart('corner', f, +t.dataset.corner), start: p};
  } else if (t.classList.contains('flm-box') && !adding) {
    st.selectFace(f);
    redrawFaces(st.faces.map((_, g) => g));
    drag = {token: st.dragStart('box', f), start: p};
  } else if (adding || e.shiftKey) {
    drag = {kind: 'newbox', start: p, item: st.item};
  } else if (e.altKey || e.ctrlKey || e.metaKey) {
    drag = {kind: 'band', start: p, item: st.item, add: e.ctrlKey || e.metaKey};
  } else {
    drag = {kind: 'pan', sx: e.clientX, sy: e.clientY, v0: Object.assign({}, view), moved: false, item: st.item};
    svg.classList.add('panning');
  }
  if (drag && drag.token === null) drag = null;
  if (drag) svg.setPointerCapture(e.pointerId);
  ed.focus({preventScroll: true});
  e.preventDefault();
});
svg.addEventListener('pointermove', e => {
  if (!drag) return;
  if (drag.item !== undefined && drag.item !== st.item) { endDrag(null); return; }
  if (drag.kind === 'pan') {
    const k = scale();
    const dx = (e.clientX - drag.sx) / k, dy = (e.clientY - drag.sy) / k;
    if (Math.abs(dx) + Math.abs(dy) > 0) drag.moved = true;
    view = Object.assign({}, drag.v0, {x: drag.v0.x - dx, y: drag.v0.y - dy});
    applyView();
    return;
  }
  const p = toImg(e);
  if (drag.kind === 'newbox' || drag.kind === 'band') {
    drag.end = p;
    overlayRect(drag.kind === 'newbox' ? 'flm-newbox' : 'flm-band', drag.start, p);
    return;
  }
  const touched = st.dragTo(drag.token, p[0] - drag.start[0], p[1] - drag.start[1]);
  if (touched === null) { endDrag(null); return; }
  redrawFaces(touched);
});
function endDrag(e) {
  if (!drag) return;
  const d = drag;
  drag = null;
  svg.classList.remove('panning');
  if (gOverlay) gOverlay.innerHTML = '';
  if (!e || (d.item !== undefined && d.item !== st.item)) return;  // cancelled, or another photo opened meanwhile
  if (d.kind === 'pan') { if (!d.moved) { st.deselect(); redrawFaces(st.faces.map((_, g) => g)); } return; }
  if (d.kind === 'newbox') {
    if (d.end) { setAdding(false); send(st.addFace([d.start[0], d.start[1], d.end[0], d.end[1]])); pointInfo.textContent = 'Predicting the new face\u2019s points\u2026'; }
    return;
  }
  if (d.kind === 'band') {
    if (d.end) st.selectRect(d.start[0], d.start[1], d.end[0], d.end[1], d.add);
    redrawFaces(st.faces.map((_, g) => g));
    return;
  }
  send(st.dragEnd(d.token));
  info();
}
svg.addEventListener('pointerup', endDrag);
svg.addEventListener('pointercancel', () => endDrag(null));
svg.addEventListener('wheel', e => {
  if (!st.loaded) return;
  e.preventDefault();
  const p = toImg(e);
  zoom(e.deltaY < 0 ? 1.25 : 0.8, p[0], p[1]);
}, {passive: false});
svg.addEventListener('pointerover', e => {
  const t = e.target;
  if (!t.classList || !t.classList.contains('flm-pt')) return;
  hovered = st.pointTitle(+t.dataset.face, +t.dataset.pt);
  info();
});
svg.addEventListener('pointerout', e => {
  if (hovered && e.target.classList && e.target.classList.contains('flm-pt')) { hovered = null; info(); }
});

// ------------------------------------------------------------------ actions
function act(a) {
  if (a === 'undo') { send(st.undo()); draw(); }
  else if (a === 'redo') { send(st.redo()); draw(); }
  else if (a === 'addface') setAdding(!adding);
  else if (a === 'delface') { send(st.deleteFace()); draw(); }
  else if (a === 'occluded') { send(st.toggleOccluded()); draw(); }
  else if (a === 'zoomin') zoom(1.25);
  else if (a === 'zoomout') zoom(0.8);
  else if (a === 'fit') fit();
  else if (a === 'labels') { labels = !labels; btn('labels').classList.toggle('on', labels); draw(); }
}
element.querySelectorAll('.flm-toolbar button').forEach(b => b.addEventListener('click', () => act(b.dataset.act)));
new ResizeObserver(() => resize()).observe(svg);

function press(id) { const b = document.getElementById(id); if (b) b.click(); }
const NUDGE = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
function onKey(e) {
  if (!st.loaded || ed.offsetParent === null) return;
  const t = e.target, tag = (t && t.tagName) || '';
  if (/^(INPUT|TEXTAREA|SELECT)$/.test(tag) || (t && t.isContentEditable)) return;
  const mod = e.ctrlKey || e.metaKey, k = e.key;
  let done = true;
  if (mod && (k === 'z' || k === 'Z')) act(e.shiftKey ? 'redo' : 'undo');
  else if (mod && (k === 'y' || k === 'Y')) act('redo');
  else if (mod || e.altKey) done = false;
  else if (e.shiftKey && NUDGE[k]) { if (st.sel.length) { send(st.nudge(NUDGE[k][0], NUDGE[k][1])); redrawFaces(st.faces.map((_, g) => g)); } }
  else if (k === 'ArrowRight' || k === 'n' || k === 'N') press('flm-next');
  else if (k === 'ArrowLeft' || k === 'p' || k === 'P') press('flm-prev');
  else if (k === 'd' || k === 'D') press('flm-done');
  else if (k === 'Delete' || k === 'Backspace') act('delface');
  else if (k === 'o' || k === 'O') act('occluded');
  else if (k === 'a' || k === 'A') act('addface');
  else if (/^[1-5]$/.test(k)) { if (st.selectPart(+k)) redrawFaces(st.faces.map((_, g) => g)); }
  else if (k === '+' || k === '=') zoom(1.25);
  else if (k === '-' || k === '_') zoom(0.8);
  else if (k === '0') fit();
  else if (k === 'Escape') { setAdding(false); endDrag(null); st.deselect(); redrawFaces(st.faces.map((_, g) => g)); }
  else if (k === 'l' || k === 'L') act('labels');
  else done = false;
  if (done) e.preventDefault();
}
// gr.HTML may run this body again (a re-render): one document-level key handler at a time.
if (window.__flmKeyHandler) document.removeEventListener('keydown', window.__flmKeyHandler);
window.__flmKeyHandler = onKey;
document.addEventListener('keydown', onKey);

watch('value', () => load(props.value));
load(props.value);
