// The point editor's state logic (facelm/editor/state.js) under node's built-in test runner:
//   node --test tests/js/
// Values are built the way facelm.editor.editor_value builds them (68-point faces, parts, names).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const {EditorState, sameFaces} = require(path.join(__dirname, '..', '..', 'facelm', 'editor', 'state.js'));

const K = 68;
const PARTS = {jaw: range(0, 17), brows: range(17, 27), nose: range(27, 36), eyes: range(36, 48), mouth: range(48, 68)};
function range(a, b) { return Array.from({length: b - a}, (_, i) => a + i); }

/** A face of K points on a grid inside its box, offset so each face of a photo is distinct. */
function face(n, opts) {
  const x0 = 40 * n, pts = range(0, K).map(i => [x0 + (i % 10) * 3 + 0.25, 10 + Math.floor(i / 10) * 3 + 0.5]);
  const f = {points: pts, box: [x0, 8, x0 + 32, 34], score: 0.9};
  if (opts && opts.occluded) f.occluded = opts.occluded;
  return f;
}
function value(item, nFaces, extra) {
  return Object.assign({project: 'p1', item: item, revision: 0, name: `${item}.jpg`, index: 0, count: 40, done: 12,
                        status: 'predicted', uncertainty: nFaces ? 0.031 : null, width: 1200, height: 800,
                        image: 'data:image/jpeg;base64,AAAA', faces: range(0, nFaces).map(n => face(n)),
                        face_uncertainty: range(0, nFaces).map(() => 0.03), names: range(0, K).map(i => `p${i}`),
                        lines: [[range(0, 17), false]], parts: PARTS}, extra || {});
}
/** The faces the server would store for an edit: float32-rounded, as annotation_store writes them. */
function stored(msg) {
  return msg.faces.map(f => ({points: f.points.map(p => [Math.fround(p[0]), Math.fround(p[1])]),
                              box: f.box.map(Math.fround), occluded: f.occluded}));
}

test('loading a photo shows its faces, item, position and progress', () => {
  const s = new EditorState();
  assert.equal(s.load(value('0007', 7, {index: 2})), 'new');
  assert.equal(s.faces.length, 7);
  assert.equal(s.item, '0007');
  assert.equal(s.whereText(), 'Image 3 of 40');
  assert.equal(s.progressText(), '12 of 40 done');
  assert.equal(s.uncertaintyText(), '3.1%');
  assert.deepEqual(s.faces[0].occluded, new Array(K).fill(false));  // occluded optional on read
});

test('a new photo replaces faces, selection and history: 7 faces then 1 face (the faceSize crash)', () => {
  const s = new EditorState();
  s.load(value('0001', 7));
  s.selectPoint(6, 30);
  const d = s.dragStart('points');
  s.dragTo(d, 5, 5);
  assert.ok(s.dragEnd(d));
  assert.equal(s.hist.length, 1);
  assert.equal(s.load(value('0002', 1, {index: 1})), 'new');
  assert.equal(s.faces.length, 1);
  assert.deepEqual(s.sel, []);
  assert.equal(s.face, null);
  assert.equal(s.hist.length, 0);
  assert.equal(s.fut.length, 0);
  assert.equal(s.whereText(), 'Image 2 of 40');
  assert.equal(s.faceUncertainty(6), null);
  assert.equal(s.pointTitle(6, 30), '');  // nothing of the old photo's face 7 is reachable
});

test('a drag in flight when another photo arrives is void and edits nothing', () => {
  const s = new EditorState();
  s.load(value('0001', 3));
  s.selectPoint(2, 10);
  const d = s.dragStart('points');
  s.load(value('0002', 1));
  assert.equal(s.dragTo(d, 10, 10), null);
  assert.equal(s.dragEnd(d), null);
  assert.deepEqual(s.faces[0].points[10], face(0).points[10]);
});

test('a drag in flight when the same photo comes back with other faces is void too', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectPoint(1, 3);
  const d = s.dragStart('points');
  assert.equal(s.load(value('0001', 1, {revision: 1})), 'replaced');
  assert.equal(s.dragTo(d, 1, 1), null);
  assert.deepEqual(s.sel, []);  // face 2 is gone, so is its selected point
});

test('no face: no points, the no-face message, uncertainty shown as a dash; then 30 faces', () => {
  const s = new EditorState();
  s.load(value('0003', 0));
  assert.equal(s.faces.length, 0);
  assert.equal(s.noFaceText(), 'No face found \u2014 draw a box to add one');
  assert.equal(s.selectionText(), s.noFaceText());
  assert.equal(s.uncertaintyText(), '\u2014');
  assert.equal(s.selectedFace(), null);
  assert.equal(s.deleteFace(), null);
  assert.equal(s.selectPart(1), false);
  assert.equal(s.load(value('0004', 30)), 'new');
  assert.equal(s.faces.length, 30);
  assert.equal(s.noFaceText(), '');
  s.selectPoint(29, 67);
  assert.match(s.selectionText(), /^Face 30 \u00b7 point 67 p67 \u00b7 x /);
  const msg = s.deleteFace();
  assert.equal(msg.faces.length, 29);
  assert.equal(msg.op, 'delete_face');
  s.load(value('0005', 1));
  assert.equal(s.uncertaintyText(), '3.1%');
  s.deleteFace(0);  // its uncertainty was about a face that is gone
  assert.equal(s.uncertaintyText(), '\u2014');
});

test('undo and redo stay within one photo; coming back to a photo starts a fresh history', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectPoint(0, 5);
  s.nudge(1, 0);
  s.nudge(1, 0);
  assert.equal(s.faces[0].points[5][0], face(0).points[5][0] + 2);
  const u = s.undo();
  assert.equal(u.item, '0001');
  assert.equal(u.op, 'edit');
  assert.equal(u.faces[0].points[5][0], face(0).points[5][0] + 1);
  const r = s.redo();
  assert.equal(r.faces[0].points[5][0], face(0).points[5][0] + 2);
  s.load(value('0002', 1));
  assert.equal(s.undo(), null);  // nothing to undo on this photo: never into another one
  assert.equal(s.redo(), null);
  s.load(value('0001', 2, {revision: 3}));
  assert.equal(s.undo(), null);
});

test('edit messages carry project, item, revision, op, seq and the faces with their occluded flags', () => {
  const s = new EditorState();
  s.load(value('0009', 2, {revision: 4}));
  s.selectPoint(1, 2);
  const m = s.nudge(0, -1);
  assert.deepEqual(Object.keys(m).sort(), ['dirty', 'faces', 'item', 'op', 'project', 'revision', 'seq'].sort());
  assert.equal(m.project, 'p1');
  assert.equal(m.item, '0009');
  assert.equal(m.revision, 4);
  assert.equal(m.op, 'edit');
  assert.equal(m.dirty, true);
  assert.deepEqual(Object.keys(m.faces[0]).sort(), ['box', 'occluded', 'points']);
  assert.equal(m.faces[1].points[2][1], face(1).points[2][1] - 1);
  const m2 = s.nudge(0, -1);
  assert.ok(m2.seq > m.seq);
  assert.equal(s.v.status, 'edited');
});

test('an accepted save brings the new revision; the next edit carries it; nothing is redrawn', () => {
  const s = new EditorState();
  s.load(value('0001', 1, {revision: 2}));
  s.selectPoint(0, 0);
  const m = s.nudge(3, 0);
  assert.equal(m.revision, 2);
  const back = value('0001', 1, {revision: 3, status: 'edited'});
  back.faces = stored(m);
  assert.equal(s.load(back), 'same');
  assert.deepEqual(s.sel, [[0, 0]]);  // same photo: the selection stays
  assert.equal(s.nudge(1, 0).revision, 3);
});

test('an answer to an earlier edit while newer local edits wait: keep them and send them again', () => {
  const s = new EditorState();
  s.load(value('0001', 1, {revision: 0}));
  s.selectPoint(0, 0);
  const first = s.nudge(1, 0);
  s.nudge(1, 0);  // made before the answer to the first arrives
  const back = value('0001', 1, {revision: 1});
  back.faces = stored(first);
  assert.equal(s.load(back), 'resend');
  assert.equal(s.faces[0].points[0][0], face(0).points[0][0] + 2);  // the newer edit is kept
  const again = s.resend();
  assert.equal(again.revision, 1);
  assert.equal(again.faces[0].points[0][0], face(0).points[0][0] + 2);
});

test('a refusal (message) or another change from the server replaces the faces, keeping the local ones undoable', () => {
  const s = new EditorState();
  s.load(value('0001', 2, {revision: 5}));
  s.selectPoint(0, 0);
  s.nudge(4, 4);
  const refused = value('0001', 2, {revision: 6, message: 'This photo changed elsewhere: reloaded.'});
  assert.equal(s.load(refused), 'replaced');
  assert.equal(s.message, 'This photo changed elsewhere: reloaded.');
  assert.equal(s.revision, 6);
  assert.deepEqual(s.faces[0].points[0], face(0).points[0]);
  const u = s.undo();
  assert.equal(u.revision, 6);
  assert.equal(s.message, '');  // the note was about the state before this edit
  assert.equal(u.faces[0].points[0][0], face(0).points[0][0] + 4);
});

test('an answer older than the revision held is ignored', () => {
  const s = new EditorState();
  s.load(value('0001', 1, {revision: 7}));
  assert.equal(s.load(value('0001', 2, {revision: 6})), 'stale');
  assert.equal(s.faces.length, 1);
  assert.equal(s.revision, 7);
});

test('faces appearing: add_face sends the drawn box and the server answer with one more face opens as usual', () => {
  const s = new EditorState();
  s.load(value('0001', 0, {revision: 1}));
  const m = s.addFace([300, 200, 100, 50]);
  assert.equal(m.op, 'add_face');
  assert.deepEqual(m.box, [100, 50, 300, 200]);
  assert.equal(m.revision, 1);
  assert.deepEqual(m.faces, []);
  assert.equal(s.addFace([1, 1, 2, 1]), null);  // a click, not a box
  assert.equal(s.load(value('0001', 1, {revision: 2})), 'replaced');
  assert.equal(s.faces.length, 1);
  const u = s.undo();  // undo removes the added face again
  assert.equal(u.faces.length, 0);
});

test('delete the selected face (box click selects it), undo brings it back', () => {
  const s = new EditorState();
  s.load(value('0001', 3));
  s.selectFace(1);
  assert.equal(s.selectedFace(), 1);
  const m = s.deleteFace();
  assert.equal(m.op, 'delete_face');
  assert.equal(m.faces.length, 2);
  assert.deepEqual(m.faces[1].points[0], face(2).points[0]);
  assert.equal(s.face, null);
  const u = s.undo();
  assert.equal(u.faces.length, 3);
  assert.ok(sameFaces(s.faces, [face(0), face(1), face(2)].map(f => Object.assign(f, {occluded: new Array(K).fill(false)}))));
});

test('select whole parts by name or key 1-5, on the selected face', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectFace(1);
  assert.ok(s.selectPart(1));
  assert.deepEqual(s.sel, PARTS.jaw.map(i => [1, i]));
  assert.ok(s.selectPart('eyes'));
  assert.deepEqual(s.sel, PARTS.eyes.map(i => [1, i]));
  assert.ok(s.selectPart(5));
  assert.equal(s.sel.length, 20);
  assert.ok(s.sel.every(([f, i]) => f === 1 && i >= 48));
  assert.equal(s.selectPart('ears'), false);
});

test('shift-click toggles points and the rubber band selects the points inside it', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectPoint(0, 1);
  s.selectPoint(0, 2, true);
  s.selectPoint(1, 3, true);
  assert.deepEqual(s.sel, [[0, 1], [0, 2], [1, 3]]);
  s.selectPoint(0, 2, true);
  assert.deepEqual(s.sel, [[0, 1], [1, 3]]);
  // face 0's first row of points: x 0.25..27.25, y 10.5
  assert.equal(s.selectRect(0, 10, 30, 11), 10);
  assert.deepEqual(s.sel, range(0, 10).map(i => [0, i]));
  assert.equal(s.face, 0);
  s.selectRect(40, 10, 45, 11, true);  // adds face 1's first two points
  assert.equal(s.sel.length, 12);
  assert.equal(s.face, null);
  assert.match(s.selectionText(), /^12 points selected on 2 faces/);
});

test('dragging one selected point moves all of them together, in one undoable edit', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectPart('nose', 0);
  s.selectPoint(1, 0, true);
  const d = s.dragStart('points');
  assert.deepEqual(s.dragTo(d, 2.5, -1).sort(), [0, 1]);
  s.dragTo(d, 5, -2);
  const m = s.dragEnd(d);
  for (const i of PARTS.nose) assert.deepEqual(m.faces[0].points[i], [face(0).points[i][0] + 5, face(0).points[i][1] - 2]);
  assert.deepEqual(m.faces[1].points[0], [face(1).points[0][0] + 5, face(1).points[0][1] - 2]);
  assert.deepEqual(m.faces[0].points[0], face(0).points[0]);  // the jaw did not move
  assert.equal(s.hist.length, 1);
  const u = s.undo();
  assert.deepEqual(u.faces[0].points[30], face(0).points[30]);
  const n = s.nudge(0, 1);  // Shift+arrow: every selected point too
  assert.equal(n.faces[0].points[30][1], face(0).points[30][1] + 1);
  assert.equal(n.faces[1].points[0][1], face(1).points[0][1] + 1);
});

test('a drag that does not move sends nothing; a box drag and a corner drag move the box', () => {
  const s = new EditorState();
  s.load(value('0001', 1));
  s.selectPoint(0, 0);
  const d = s.dragStart('points');
  assert.equal(s.dragEnd(d), null);
  const b = s.dragStart('box', 0);
  s.dragTo(b, 10, 0);
  assert.deepEqual(s.dragEnd(b).faces[0].box, [10, 8, 42, 34]);
  const c = s.dragStart('corner', 0, 3);
  s.dragTo(c, -100, -100);  // never inside out
  assert.deepEqual(s.dragEnd(c).faces[0].box, [10, 8, 12, 10]);
});

test('O flags the selected points occluded, again makes them visible; flags are kept and sent', () => {
  const s = new EditorState();
  const occ = new Array(K).fill(false);
  occ[8] = true;
  const v = value('0001', 1);
  v.faces[0] = face(0, {occluded: occ});
  s.load(v);
  assert.match(s.pointTitle(0, 8), /occluded/);
  s.selectPoint(0, 8);
  s.selectPoint(0, 9, true);
  let m = s.toggleOccluded();  // one of them is visible: flag both
  assert.equal(m.faces[0].occluded[8], true);
  assert.equal(m.faces[0].occluded[9], true);
  assert.equal(m.faces[0].occluded.filter(Boolean).length, 2);
  m = s.toggleOccluded();
  assert.equal(m.faces[0].occluded.filter(Boolean).length, 0);
  s.deselect();
  assert.equal(s.toggleOccluded(), null);
  const u = s.undo();
  assert.equal(u.faces[0].occluded[9], true);
});

test('an empty value (new project) clears everything; an edit echoed back without an image is ignored', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectPoint(0, 0);
  const m = s.nudge(1, 1);
  assert.equal(s.load(m), 'ignored');
  assert.equal(s.item, '0001');
  assert.equal(s.load({}), 'empty');
  assert.equal(s.loaded, false);
  assert.equal(s.faces.length, 0);
  assert.equal(s.undo(), null);
  assert.equal(s.whereText(), '');
  assert.equal(s.load(null), 'empty');
});

test('the same item id in another project is another photo', () => {
  const s = new EditorState();
  s.load(value('0001', 2));
  s.selectPoint(0, 0);
  s.nudge(1, 1);
  assert.equal(s.load(value('0001', 2, {project: 'p2'})), 'new');
  assert.equal(s.hist.length, 0);
});

test('stepping forward through 40 photos of 0, 1, 7 and 30 faces and back never mixes them', () => {
  const s = new EditorState();
  const counts = [7, 1, 0, 30];
  const faces = range(0, 40).map(i => counts[i % 4]);
  const order = range(0, 40).concat(range(0, 39).reverse());
  for (const i of order) {
    const id = String(i + 1).padStart(4, '0');
    assert.equal(s.load(value(id, faces[i], {index: i})), 'new');
    assert.equal(s.faces.length, faces[i]);
    assert.equal(s.whereText(), `Image ${i + 1} of 40`);
    assert.ok(s.sel.every(([f]) => f < faces[i]));
    if (faces[i]) {
      s.selectPoint(faces[i] - 1, 67);
      const m = s.nudge(1, 0);
      assert.equal(m.item, id);
      assert.equal(m.faces.length, faces[i]);
    } else {
      assert.equal(s.nudge(1, 0), null);
    }
  }
});
