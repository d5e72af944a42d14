/* The stage: one tile per remote person, laid out in a grid that fits the
 * space (or, while someone shares a screen, that screen large and the others
 * in a strip), the self view in a cell of its own, full screen and
 * picture-in-picture. Knows nothing of WebRTC: app.js hands it streams and
 * what each tile should say. */

const $ = (id) => document.getElementById(id);
const tiles = new Map();            // participant id -> figure element

export function tileOf(id) {
    return tiles.get(id) || null;
}

export function tileCount() {
    return tiles.size;
}

/* The tile of a participant, made from the template on first use. */
export function ensureTile(id) {
    if (tiles.has(id)) return tiles.get(id);
    const fig = $('tpl-remote').content.cloneNode(true).querySelector('figure');
    fig.dataset.participant = id;
    tiles.set(id, fig);
    $('remote-grid').append(fig);
    layout();
    return fig;
}

export function removeTile(id) {
    const fig = tiles.get(id);
    if (!fig) return;
    const video = fig.querySelector('video');
    if (document.pictureInPictureElement === video) document.exitPictureInPicture().catch(() => {});
    video.srcObject = null;
    fig.remove();
    tiles.delete(id);
    layout();
}

export function removeAllTiles() {
    for (const id of Array.from(tiles.keys())) removeTile(id);
}

export function attachStream(id, stream, sinkId) {
    const video = ensureTile(id).querySelector('video');
    if (video.srcObject !== stream) video.srcObject = stream;
    if (sinkId && video.setSinkId) video.setSinkId(sinkId).catch(() => {});
    video.play().catch(() => { /* started by the next user gesture */ });
}

/* Up to two initials of a name ("Dr. Ana Rivera" -> "AR"); titles and
 * punctuation skipped; '?' for no name. */
export function initials(name) {
    const words = String(name || '').split(/\s+/).map((w) => w.replace(/[^\p{L}\p{N}]/gu, ''))
        .filter((w) => w && !/^(dr|mr|mrs|ms|dra|sr|sra)$/i.test(w));
    if (!words.length) return '?';
    const first = Array.from(words[0])[0];
    const last = words.length > 1 ? Array.from(words[words.length - 1])[0] : '';
    return (first + last).toLocaleUpperCase();
}

/* view: {name, label, initials, connection, stateText, mic, cam, share,
 * speaking, interrupted, words: {muted, speaking}}. The video is hidden
 * (not just covered) while there is no picture, so that a stopped camera
 * never leaves its last frame on the screen. */
export function renderTile(id, view) {
    const fig = tiles.get(id);
    if (!fig) return;
    const d = fig.dataset;
    d.connection = view.connection;
    d.mic = view.mic ? 'on' : 'off';
    d.cam = view.cam ? 'on' : 'off';
    d.sharing = String(!!view.share);
    d.speaking = String(!!view.speaking);
    d.interrupted = String(!!view.interrupted);
    const video = fig.querySelector('video');
    video.hidden = !view.cam && !view.share;
    video.setAttribute('aria-label', view.label);
    fig.querySelector('.remote-avatar').textContent = view.initials;
    fig.querySelector('.remote-avatar').hidden = !video.hidden;
    fig.querySelector('.remote-muted').hidden = view.mic;
    fig.querySelector('.remote-muted').textContent = view.words.muted;
    fig.querySelector('.remote-speaking').textContent = view.speaking ? view.words.speaking : '';
    setText(fig.querySelector('.remote-name'), view.name);
    setText(fig.querySelector('.remote-state'), view.stateText);
    if (!!view.share !== (d.wasSharing === 'true')) {
        d.wasSharing = String(!!view.share);
        layout();
    }
}

/* Writes text only when it changed (the tile is re-rendered often; a screen
 * reader should not hear the same caption again). */
function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
}

/* Columns for n tiles of 16:9 in a w x h box: the count that makes each tile
 * largest. */
export function bestColumns(n, w, h) {
    let best = 1, bestSize = 0;
    for (let cols = 1; cols <= n; cols++) {
        const rows = Math.ceil(n / cols);
        const tw = w / cols, th = h / rows;
        const size = Math.min(tw, th * 16 / 9);
        if (size > bestSize + 0.5) { best = cols; bestSize = size; }
    }
    return best;
}

/* Grid or share layout, after a tile came, went or started sharing, and on
 * resize. The sharer (the first, if two share) gets the big area. */
export function layout() {
    const stage = $('stage');
    const grid = $('remote-grid');
    const list = Array.from(tiles.values());
    const sharer = list.find((f) => f.dataset.sharing === 'true');
    stage.dataset.count = String(list.length);
    stage.dataset.layout = sharer ? 'share' : 'grid';
    for (const f of list) f.classList.toggle('tile-main', f === sharer);
    $('remote-empty').hidden = list.length > 0;
    if (sharer) {
        if (grid.firstElementChild !== sharer) grid.prepend(sharer);
        grid.dataset.others = String(Math.min(list.length - 1, 7));
        grid.dataset.cols = '1';
        return;
    }
    grid.dataset.others = '0';
    const box = grid.getBoundingClientRect();
    grid.dataset.cols = String(list.length ? bestColumns(list.length, box.width || 1, box.height || 1) : 1);
    grid.dataset.rows = String(list.length ? Math.ceil(list.length / Number(grid.dataset.cols)) : 1);
}

let resizeObserver = null;

/* Re-lays the grid whenever the stage changes size (window, panels). */
export function watchStageSize() {
    if (resizeObserver || typeof ResizeObserver !== 'function') return;
    let queued = false;
    resizeObserver = new ResizeObserver(() => {
        if (queued) return;
        queued = true;
        requestAnimationFrame(() => { queued = false; layout(); });
    });
    resizeObserver.observe($('remote-grid'));
}

/* Full screen of the whole call (stage and controls), so the buttons stay. */
export function canFullscreen() {
    return !!(document.fullscreenEnabled && document.documentElement.requestFullscreen);
}

export async function toggleFullscreen() {
    if (document.fullscreenElement) await document.exitFullscreen();
    else await $('screen-call').requestFullscreen();
}

export function canPip() {
    return !!document.pictureInPictureEnabled;
}

/* Picture-in-picture of the most relevant remote video: the shared screen,
 * else the speaker, else the first with a picture. */
export async function togglePip() {
    if (document.pictureInPictureElement) {
        await document.exitPictureInPicture();
        return false;
    }
    const list = Array.from(tiles.values()).filter((f) => !f.querySelector('video').hidden);
    const pick = list.find((f) => f.dataset.sharing === 'true') || list.find((f) => f.dataset.speaking === 'true') || list[0];
    if (!pick) return false;
    await pick.querySelector('video').requestPictureInPicture();
    return true;
}
