/* The point editor's state, without the DOM: which photo is open, its faces, the selection, the
 * per-photo undo history, and the edit messages sent to the server (see facelm/editor/__init__.py
 * for the value and edit fields).
 *
 * One file for two hosts: gr.HTML runs its js_on_load as a function body, so the app prepends this
 * file to editor.js (FlmState is then a local of that body); node's test runner requires it
 * (module.exports). Hence no import/export syntax here.
 */
var FlmState = (function () {
  'use strict';

  const PARTS = ['jaw', 'brows', 'eyes', 'nose', 'mouth'];  // keys 1-5
  const HISTORY_MAX = 200;
  const PENDING_MAX = 50;
  // The server stores float32 points: a point read back differs from the one sent by about 1e-5 px.
  const SAME_PX = 1e-3;

  function isNum(v) { return typeof v === 'number' && isFinite(v); }

  /** A face as the editor keeps it: points copied, box or null, one occluded flag per point. */
  function normFace(f) {
    const points = ((f && f.points) || []).map(p => [+p[0], +p[1]]);
    const occ = (f && Array.isArray(f.occluded)) ? f.occluded : [];
    const box = f && Array.isArray(f.box) && f.box.length === 4 ? f.box.map(Number) : null;
    const out = {points: points, box: box, occluded: points.map((_, i) => !!occ[i])};
    if (f && 'score' in f) out.score = isNum(f.score) ? f.score : null;
    return out;
  }
  function cloneFaces(faces) { return (faces || []).map(normFace); }

  function close(a, b) { return Math.abs(a - b) <= SAME_PX; }
  /** Whether two face lists hold the same faces (points and boxes within float32 rounding). */
  function sameFaces(a, b) {
    if (a.length !== b.length) return false;
    for (let f = 0; f < a.length; f++) {
      const x = a[f], y = b[f];
      if (x.points.length !== y.points.length) return false;
      for (let i = 0; i < x.points.length; i++) {
        if (!close(x.points[i][0], y.points[i][0]) || !close(x.points[i][1], y.points[i][1])) return false;
        if (x.occluded[i] !== y.occluded[i]) return false;
      }
      if (!x.box !== !y.box) return false;
      if (x.box && !x.box.every((v, k) => close(v, y.box[k]))) return false;
    }
    return true;
  }

  function fmtPx(v) { return (Math.round(v * 10) / 10).toFixed(1); }

  class EditorState {
    constructor() {
      this.seq = 0;  // never reset: a message's seq is unique for the page's life
      this.clear();
    }

    /** Nothing open (a new project). */
    clear() {
      this.v = null;          // the last value received, without its faces
      this.faces = [];
      this.sel = [];          // selected points: [[face, point], ...]
      this.face = null;       // the selected face (for Delete), or null
      this.hist = [];         // undo snapshots of this photo's faces; emptied when another photo opens
      this.fut = [];
      this.revision = 0;      // the revision the next edit is made on
      this.pending = [];      // faces of edits sent and not yet answered, oldest first
      this.epoch = 0;         // bumped whenever faces are replaced wholesale: drags begun before are void
      this.message = '';
    }

    get loaded() { return this.v !== null; }
    get item() { return this.v ? this.v.item : null; }
    get numPoints() { return this.v && this.v.names ? this.v.names.length : (this.faces[0] ? this.faces[0].points.length : 0); }

    /**
     * Take a value from the server. Returns what happened, for the view:
     *  'empty'    nothing to show (no item);
     *  'ignored'  not a drawable value (an edit message echoed back, no image): nothing changes;
     *  'new'      another photo (or project): faces, selection and history replaced, view to fit;
     *  'same'     this photo, same faces (an accepted save): revision and details taken, nothing redrawn;
     *  'resend'   an earlier edit was accepted while newer local edits wait: the caller sends resend();
     *  'replaced' this photo with other faces (re-predicted, a face added, a refused edit): faces
     *             replaced, the local ones kept in the undo history;
     *  'stale'    an answer older than what the editor already holds: ignored.
     */
    load(v) {
      if (!v || typeof v !== 'object' || !v.item) { this.clear(); return 'empty'; }
      if (!v.image) return 'ignored';
      const server = cloneFaces(v.faces);
      const rev = isNum(v.revision) ? v.revision : 0;
      const meta = Object.assign({}, v);
      delete meta.faces;
      if (!this.v || this.v.item !== v.item || this.v.project !== v.project) {
        this.clear();
        this.v = meta;
        this.faces = server;
        this.revision = rev;
        this.message = v.message || '';
        this.epoch += 1;
        return 'new';
      }
      if (rev < this.revision && !v.message) return 'stale';
      const keepStatus = this.v.status;
      this.v = meta;
      this.message = v.message || '';
      if (!v.status) this.v.status = keepStatus;
      let acked = -1;
      if (!v.message) {
        for (let k = this.pending.length - 1; k >= 0; k--) if (sameFaces(this.pending[k], server)) { acked = k; break; }
      }
      if (acked >= 0) {
        this.pending = this.pending.slice(acked + 1);
        this.revision = rev;
        return sameFaces(server, this.faces) ? 'same' : 'resend';
      }
      this.revision = rev;
      this.pending = [];
      if (sameFaces(server, this.faces)) return 'same';
      this.hist.push(cloneFaces(this.faces));
      if (this.hist.length > HISTORY_MAX) this.hist.shift();
      this.fut = [];
      this.faces = server;
      this.epoch += 1;
      this.pruneSelection();
      return 'replaced';
    }

    /** The edit message for the local faces, on the current revision (after a 'resend'). */
    resend() { return this.send('edit'); }

    // ------------------------------------------------------------------ edits
    send(op, extra) {
      this.seq += 1;
      const msg = {project: this.v.project, item: this.v.item, revision: this.revision,
                   faces: cloneFaces(this.faces).map(f => ({points: f.points, box: f.box, occluded: f.occluded})),
                   dirty: true, seq: this.seq, op: op};
      if (extra) Object.assign(msg, extra);
      if (op !== 'add_face') {  // the server answers add_face with faces of its own
        this.pending.push(cloneFaces(this.faces));
        if (this.pending.length > PENDING_MAX) this.pending.shift();
      }
      if (this.v.status === 'predicted' && op !== 'add_face') this.v.status = 'edited';
      this.message = '';  // a server's note (e.g. a refusal) is about the state before this edit
      return msg;
    }

    /** Record ``before`` for undo and send the change; null when nothing changed. */
    commit(before, op) {
      op = op || 'edit';
      if (op === 'edit' && sameFaces(before, this.faces)) return null;
      this.hist.push(before);
      if (this.hist.length > HISTORY_MAX) this.hist.shift();
      this.fut = [];
      return this.send(op);
    }

    undo() { return this.step(this.hist, this.fut); }

    redo() { return this.step(this.fut, this.hist); }

    /** One step through the history: take the faces from `from`, keep the current ones on `to`. */
    step(from, to) {
      if (!this.loaded || !from.length) return null;
      to.push(cloneFaces(this.faces));
      this.faces = from.pop();
      this.epoch += 1;
      this.pruneSelection();
      return this.send('edit');
    }

    /** Delete a face (default: the selected one). */
    deleteFace(f) {
      if (f === undefined || f === null) f = this.selectedFace();
      if (!this.loaded || f === null || !this.faces[f]) return null;
      const before = cloneFaces(this.faces);
      this.faces.splice(f, 1);
      this.epoch += 1;
      this.sel = [];
      this.face = null;
      return this.commit(before, 'delete_face');
    }

    /** Ask the server for a new face in ``box`` (image pixels; corners in any order). */
    addFace(box) {
      if (!this.loaded || !box || box.length !== 4 || !box.every(isNum)) return null;
      const b = [Math.min(box[0], box[2]), Math.min(box[1], box[3]), Math.max(box[0], box[2]), Math.max(box[1], box[3])];
      if (b[2] - b[0] < 2 || b[3] - b[1] < 2) return null;
      return this.send('add_face', {box: b});
    }

    /** Flag the selected points occluded, or all visible again when all of them already are. */
    toggleOccluded() {
      if (!this.sel.length) return null;
      const before = cloneFaces(this.faces);
      const flag = !this.sel.every(([f, i]) => this.faces[f].occluded[i]);
      for (const [f, i] of this.sel) this.faces[f].occluded[i] = flag;
      return this.commit(before, 'edit');
    }

    /** Move every selected point by (dx, dy) image pixels in one undoable step. */
    nudge(dx, dy) {
      if (!this.sel.length) return null;
      const before = cloneFaces(this.faces);
      for (const [f, i] of this.sel) { const p = this.faces[f].points[i]; p[0] += dx; p[1] += dy; }
      return this.commit(before, 'edit');
    }

    // ------------------------------------------------------------------ drags
    /** Start dragging: kind 'points' (the selection), 'box' (face f's box) or 'corner' (c = 0..3). */
    dragStart(kind, f, c) {
      if (!this.loaded) return null;
      if (kind !== 'points' && !(this.faces[f] && this.faces[f].box)) return null;
      if (kind === 'points' && !this.sel.length) return null;
      return {kind: kind, f: f, c: c, item: this.v.item, epoch: this.epoch, before: cloneFaces(this.faces),
              orig: kind === 'points' ? this.sel.map(([g, i]) => [g, i, this.faces[g].points[i][0], this.faces[g].points[i][1]])
                                      : this.faces[f].box.slice()};
    }

    /** Whether a drag still applies (the photo or its faces were not replaced meanwhile). */
    dragValid(d) { return !!d && this.loaded && d.item === this.v.item && d.epoch === this.epoch; }

    /** Move the drag to an offset (dx, dy) from where it started; the faces touched, or null when void. */
    dragTo(d, dx, dy) {
      if (!this.dragValid(d)) return null;
      if (d.kind === 'points') {
        const touched = new Set();
        for (const [f, i, x, y] of d.orig) { this.faces[f].points[i] = [x + dx, y + dy]; touched.add(f); }
        return Array.from(touched);
      }
      const o = d.orig, face = this.faces[d.f];
      if (d.kind === 'box') {
        face.box = [o[0] + dx, o[1] + dy, o[2] + dx, o[3] + dy];
      } else {
        const b = o.slice(), c = d.c;
        if (c === 0 || c === 2) b[0] = Math.min(o[0] + dx, o[2] - 2); else b[2] = Math.max(o[2] + dx, o[0] + 2);
        if (c === 0 || c === 1) b[1] = Math.min(o[1] + dy, o[3] - 2); else b[3] = Math.max(o[3] + dy, o[1] + 2);
        face.box = b;
      }
      return [d.f];
    }

    /** Finish a drag: the edit message, or null (nothing moved, or the drag was void). */
    dragEnd(d) {
      if (!this.dragValid(d)) return null;
      return this.commit(d.before, 'edit');
    }

    // ------------------------------------------------------------------ selection
    isSelected(f, i) { return this.sel.some(([g, j]) => g === f && j === i); }

    /** Select one point; with ``add``, toggle it in the selection instead. */
    selectPoint(f, i, add) {
      if (!this.faces[f] || !this.faces[f].points[i]) return;
      if (add) {
        this.sel = this.isSelected(f, i) ? this.sel.filter(([g, j]) => g !== f || j !== i) : this.sel.concat([[f, i]]);
      } else {
        this.sel = [[f, i]];
      }
      this.face = f;
    }

    selectFace(f) {
      this.face = this.faces[f] ? f : null;
      if (this.face === null || this.sel.some(([g]) => g !== f)) this.sel = [];
    }

    deselect() { this.sel = []; this.face = null; }

    /** The face an action applies to: the selected one, else the only face, else null. */
    selectedFace() {
      if (this.face !== null && this.faces[this.face]) return this.face;
      if (this.sel.length && this.faces[this.sel[0][0]]) return this.sel[0][0];
      return this.faces.length === 1 ? 0 : null;
    }

    /** Select a whole part ('jaw', 'brows', 'eyes', 'nose', 'mouth', or its number 1-5) of a face. */
    selectPart(part, f) {
      const name = typeof part === 'number' ? PARTS[part - 1] : part;
      const idx = (this.v && this.v.parts && this.v.parts[name]) || [];
      if (f === undefined || f === null) f = this.selectedFace();
      if (f === null && this.faces.length) f = 0;
      if (f === null || !this.faces[f] || !idx.length) return false;
      const k = this.faces[f].points.length;
      this.sel = idx.filter(i => i >= 0 && i < k).map(i => [f, i]);
      this.face = f;
      return true;
    }

    /** Select the points inside a rectangle (image pixels); ``add`` keeps the current selection. */
    selectRect(x1, y1, x2, y2, add) {
      const lx = Math.min(x1, x2), hx = Math.max(x1, x2), ly = Math.min(y1, y2), hy = Math.max(y1, y2);
      const hits = [];
      this.faces.forEach((face, f) => face.points.forEach((p, i) => {
        if (p[0] >= lx && p[0] <= hx && p[1] >= ly && p[1] <= hy) hits.push([f, i]);
      }));
      this.sel = add ? this.sel.concat(hits.filter(([f, i]) => !this.isSelected(f, i))) : hits;
      const faces = new Set(this.sel.map(([f]) => f));
      this.face = faces.size === 1 ? this.sel[0][0] : null;
      return hits.length;
    }

    /** Drop selected points and faces that no longer exist. */
    pruneSelection() {
      this.sel = this.sel.filter(([f, i]) => this.faces[f] && i < this.faces[f].points.length);
      if (this.face !== null && !this.faces[this.face]) this.face = null;
    }

    // ------------------------------------------------------------------ text
    whereText() {
      if (!this.v) return '';
      const idx = isNum(this.v.index) ? this.v.index + 1 : '?';
      return `Image ${idx} of ${isNum(this.v.count) ? this.v.count : '?'}`;
    }
    progressText() {
      if (!this.v || !isNum(this.v.done) || !isNum(this.v.count)) return '';
      return `${this.v.done} of ${this.v.count} done`;
    }
    uncertaintyText() {  // a dash where there is none (no face), never a sentinel number
      const u = this.v && this.faces.length ? this.v.uncertainty : null;
      return isNum(u) ? (100 * u).toFixed(1) + '%' : '\u2014';
    }
    faceUncertainty(f) {
      const u = this.v && this.v.face_uncertainty ? this.v.face_uncertainty[f] : null;
      return isNum(u) ? u : null;
    }
    pointName(i) { return (this.v && this.v.names && this.v.names[i]) || ''; }
    pointTitle(f, i) {
      const face = this.faces[f];
      if (!face || !face.points[i]) return '';
      const name = this.pointName(i);
      return `point ${i}${name ? ' ' + name : ''}` + (face.occluded[i] ? ' (occluded)' : '')
        + (this.faces.length > 1 ? ` \u00b7 face ${f + 1}` : '');
    }
    noFaceText() { return this.loaded && !this.faces.length ? 'No face found \u2014 draw a box to add one' : ''; }
    selectionText() {
      if (!this.loaded) return '';
      if (!this.faces.length) return this.noFaceText();
      if (!this.sel.length) {
        return this.face !== null ? `Face ${this.face + 1} selected: Delete removes it`
          : 'Click a point to select it; drag to move it';
      }
      if (this.sel.length === 1) {
        const [f, i] = this.sel[0], p = this.faces[f].points[i];
        return `Face ${f + 1} \u00b7 ${this.pointTitle(f, i).replace(/ \u00b7 face \d+$/, '')} \u00b7 x ${fmtPx(p[0])}, y ${fmtPx(p[1])}`;
      }
      const faces = new Set(this.sel.map(([f]) => f));
      const occ = this.sel.filter(([f, i]) => this.faces[f].occluded[i]).length;
      return `${this.sel.length} points selected` + (faces.size > 1 ? ` on ${faces.size} faces` : ` on face ${this.sel[0][0] + 1}`)
        + (occ ? ` \u00b7 ${occ} occluded` : '') + ': drag one or Shift+arrows to move them together';
    }
  }

  return {EditorState: EditorState, PARTS: PARTS, sameFaces: sameFaces, cloneFaces: cloneFaces, normFace: normFace};
})();

if (typeof module !== 'undefined' && module.exports) module.exports = FlmState;
