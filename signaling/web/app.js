/* Quietroom browser client: pre-call check, waiting room, clinician controls,
 * the call itself. Speaks docs/protocol.md over one WebSocket; media goes
 * through the relay, end-to-end encrypted (DTLS-SRTP between the browsers).
 *
 * Privacy: nothing here logs the token, the resume secret, SDP or names. */
import { SignalClient, signalingUrl } from './signal.js';
import { PeerLink, QualityMeter } from './peers.js';
import { errorText, errorTitle, reasonText, ERROR_TEXT, FATAL_CODES, ROLE_TEXT, STATUS_TEXT } from './messages.js';

/* boot.js already took the token out of the address bar; collect it first. */
const bootToken = typeof window.quietroomTakeToken === 'function' ? window.quietroomTakeToken() : null;

/* The resume secret (docs/protocol.md §5) is the one credential kept outside
 * memory: in sessionStorage, so that a reload of this tab takes its place back
 * without readmission. sessionStorage belongs to this tab alone and is gone
 * when the tab closes; the secret works once, is replaced by every `resumed`,
 * is useless after the server's resume grace, and is removed when the visit
 * ends for this page. The EHR token is never stored anywhere. */
const RESUME_KEY = 'quietroom.resume';
const $ = (id) => document.getElementById(id);
const $$ = (sel) => Array.from(document.querySelectorAll(sel));

/* ---------- state exposed for tests and support ----------------------------------
 * Read by the browser tests (tests/browser/). Memory only, never logged or
 * stored: no token or resume secret; lastSdp is the last offer and answer
 * received, which the page's RTCPeerConnection holds anyway. */

const qr = {
    state: 'loading',
    participant: null,
    role: null,
    peerConnections: new Map(),
    lastSdp: { offer: null, answer: null },
    quality: {},
    errorCode: null,
    reconnects: 0,
    /* Signaling: connecting, connected, reconnecting (see onConnection). */
    conn: 'none',
    /* The banner's reason while signaling is away: callContinues,
     * callContinuesRefused, reconnecting, joinRetry, or '' (none). */
    banner: '',
    /* What happened, for support and tests: no token, SDP, secret or name. */
    events: [],
    /* Test hook: an ICE restart towards every peer, as after a network change. */
    restartIce: () => { for (const l of links.values()) l.restartIce(); },
};
Object.defineProperty(window, 'quietroom', { value: qr, configurable: false, writable: false });

function logEvent(text) {
    qr.events.push(`${(performance.now() / 1000).toFixed(2)} ${text}`);
    if (qr.events.length > 200) qr.events.shift();
}

let signal = null;
const links = new Map();            // participant id -> PeerLink
const tiles = new Map();            // participant id -> figure element
const meter = new QualityMeter();
const people = new Map();           // participant id -> {role, name, connected}
/* Media received this recently keeps the call alive without signaling: a
 * call whose media stopped gets this long to come back (ICE restarts, the
 * peer's network) before a lost signaling connection ends the page. */
const MEDIA_GRACE_MS = 15000;
const RELAY_WAIT_TEXT = 'Waiting for a video server. Video starts again by itself as soon as one is available; there is no need to reload.';
let mediaSeenAt = 0;
let timerStart = 0;
let timerHandle = null;
let qualityHandle = null;

/* ---------- screens and announcements ---------------------------------------- */

const SCREENS = ['loading', 'precall', 'waiting', 'call', 'ended'];

function showScreen(name) {
    for (const s of SCREENS) $(`screen-${s}`).hidden = s !== name;
    document.body.dataset.screen = name;
    const heading = $(`screen-${name}`).querySelector('h1');
    if (heading && name !== 'call') {
        heading.tabIndex = -1;
        heading.focus({ preventScroll: false });
    }
}

function setState(state) {
    qr.state = state;
    document.body.dataset.state = state;
}

let announceSeq = 0;
function announce(text, assertive = false) {
    const el = assertive ? $('live-alert') : $('live-status');
    const seq = ++announceSeq;
    el.textContent = '';
    // A fresh text node after a tick makes screen readers speak repeats too.
    setTimeout(() => { if (seq === announceSeq) el.textContent = text; }, 50);
}

function banner(text) {
    const b = $('conn-banner');
    b.textContent = text || '';
    b.hidden = !text;
}

function displayName(p) {
    const role = ROLE_TEXT[p.role] || 'Participant';
    return p.name ? `${p.name} (${role.toLowerCase()})` : role;
}

/* ---------- local media: preview, devices, level meter ----------------------- */

const media = {
    stream: new MediaStream(),
    micMuted: false,
    camOff: false,
    audioId: '',
    videoId: '',
    sinkId: '',
};
let audioCtx = null;
let analyser = null;
let analyserSource = null;
let levelHandle = null;

function track(kind) {
    return media.stream.getTracks().find((t) => t.kind === kind) || null;
}

function deviceErrorText(err, what) {
    const name = err && err.name;
    if (name === 'NotAllowedError' || name === 'SecurityError') {
        return `Your browser is blocking the ${what}. Allow access (usually with the camera icon in the address bar or in your browser’s settings) and press “Try again”. You can also join without them, but the clinician will not see or hear you.`;
    }
    if (name === 'NotFoundError' || name === 'OverconstrainedError') {
        return `No ${what} was found. Connect one and press “Try again”, or join without it.`;
    }
    if (name === 'NotReadableError' || name === 'AbortError') {
        return `Your ${what} is in use by another application or could not be started. Close other apps that use it and press “Try again”.`;
    }
    return `The ${what} could not be started. Press “Try again”, or join without it.`;
}

function showDeviceError(text) {
    const el = $('device-error');
    el.textContent = text || '';
    el.hidden = !text;
    $('btn-retry-devices').hidden = !text;
}

async function getTrack(kind, deviceId) {
    const c = deviceId ? { deviceId: { exact: deviceId } } : true;
    const constraints = kind === 'audio'
        ? { audio: c === true ? { echoCancellation: true, noiseSuppression: true, autoGainControl: true } : { ...c, echoCancellation: true, noiseSuppression: true, autoGainControl: true } }
        : { video: c === true ? { width: { ideal: 1280 }, height: { ideal: 720 } } : { ...c, width: { ideal: 1280 }, height: { ideal: 720 } } };
    const s = await navigator.mediaDevices.getUserMedia(constraints);
    return s.getTracks()[0];
}

/* Asks for camera and microphone; falls back to whichever exists. */
async function acquireMedia() {
    showDeviceError('');
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        showDeviceError('This browser cannot use a camera or microphone on this page. Please use a current version of Chrome, Edge, Firefox or Safari.');
        return;
    }
    for (const t of media.stream.getTracks()) { t.stop(); media.stream.removeTrack(t); }
    let both = null, bothErr = null;
    try {
        both = await navigator.mediaDevices.getUserMedia({
            audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
            video: { width: { ideal: 1280 }, height: { ideal: 720 } },
        });
    } catch (e) {
        bothErr = e;
    }
    if (both) {
        for (const t of both.getTracks()) media.stream.addTrack(t);
    } else if (bothErr && (bothErr.name === 'NotAllowedError' || bothErr.name === 'SecurityError')) {
        showDeviceError(deviceErrorText(bothErr, 'camera and microphone'));
    } else {
        // One of them may be missing or busy: try each alone.
        const problems = [];
        for (const [kind, what] of [['audio', 'microphone'], ['video', 'camera']]) {
            try {
                media.stream.addTrack(await getTrack(kind, ''));
            } catch (e) {
                problems.push(deviceErrorText(e, what));
            }
        }
        if (problems.length === 2 && bothErr && bothErr.name === 'NotFoundError') {
            showDeviceError('No camera or microphone was found. Connect one and press “Try again”. You can still join to see and hear the clinician, but they will not see or hear you.');
        } else if (problems.length) {
            showDeviceError(problems.join(' '));
        }
    }
    const a = track('audio'), v = track('video');
    if (a) { media.audioId = a.getSettings().deviceId || media.audioId; a.enabled = !media.micMuted; }
    if (v) media.videoId = v.getSettings().deviceId || media.videoId;
    media.camOff = false;
    attachLocal();
    startLevelMeter();
    await fillDevicePickers();
    updateToggleButtons();
}

function attachLocal() {
    // A media element showing a stream without tracks would hold the page's
    // load event forever (it waits for data that never comes): show none.
    const src = media.stream.getTracks().length ? media.stream : null;
    for (const id of ['preview', 'waiting-preview', 'self-video']) {
        const v = $(id);
        if (v.srcObject !== src) v.srcObject = src;
        if (src) v.play().catch(() => { /* autoplay of a muted element; retried on gesture */ });
    }
    const off = !track('video');
    $('preview-off').hidden = !off;
    $('preview-off').textContent = media.camOff ? 'Camera is off' : 'No camera picture';
    document.body.classList.toggle('camera-off', off);
}

async function fillDevicePickers() {
    let devices = [];
    try {
        devices = await navigator.mediaDevices.enumerateDevices();
    } catch (e) {
        devices = [];
    }
    const groups = {
        videoinput: [['select-camera', 'call-select-camera'], media.videoId, 'Camera'],
        audioinput: [['select-mic', 'call-select-mic'], media.audioId, 'Microphone'],
        audiooutput: [['select-speaker', 'call-select-speaker'], media.sinkId, 'Speaker'],
    };
    for (const [kind, [ids, current, word]] of Object.entries(groups)) {
        const list = devices.filter((d) => d.kind === kind && d.deviceId);
        for (const id of ids) {
            const sel = $(id);
            sel.textContent = '';
            if (!list.length) {
                const o = document.createElement('option');
                o.value = '';
                o.textContent = kind === 'audiooutput' ? 'System default' : `No ${word.toLowerCase()} found`;
                sel.append(o);
                sel.disabled = kind !== 'audiooutput';
                continue;
            }
            sel.disabled = false;
            list.forEach((d, i) => {
                const o = document.createElement('option');
                o.value = d.deviceId;
                o.textContent = d.label || `${word} ${i + 1}`;
                if (d.deviceId === current) o.selected = true;
                sel.append(o);
            });
        }
    }
    const canSink = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
    $('speaker-field').hidden = !canSink;
    for (const f of $$('.js-speaker-field')) f.hidden = !canSink;
}

async function switchDevice(kind, deviceId) {
    if (kind === 'audiooutput') {
        media.sinkId = deviceId;
        syncSelects();
        for (const v of $$('.remote-video')) {
            if (v.setSinkId) v.setSinkId(deviceId).catch(() => announce('That speaker could not be used.'));
        }
        return;
    }
    const k = kind === 'audioinput' ? 'audio' : 'video';
    if (k === 'video') media.videoId = deviceId; else media.audioId = deviceId;
    syncSelects();
    if (k === 'video' && media.camOff) return; // used when the camera is turned back on
    let t;
    try {
        t = await getTrack(k, deviceId);
    } catch (e) {
        announce(deviceErrorText(e, k === 'audio' ? 'microphone' : 'camera'), true);
        return;
    }
    await putTrack(k, t);
    showDeviceError('');
}

/* Replaces the local track of that kind everywhere: preview, every peer. */
async function putTrack(kind, t) {
    const old = track(kind);
    if (old) { media.stream.removeTrack(old); old.stop(); }
    if (t) {
        if (kind === 'audio') t.enabled = !media.micMuted;
        media.stream.addTrack(t);
    }
    attachLocal();
    if (kind === 'audio') startLevelMeter();
    await Promise.all(Array.from(links.values()).map((l) => l.setTrack(kind, t)));
    updateToggleButtons();
}

function syncSelects() {
    const pairs = [['select-camera', 'call-select-camera', media.videoId],
        ['select-mic', 'call-select-mic', media.audioId],
        ['select-speaker', 'call-select-speaker', media.sinkId]];
    for (const [a, b, v] of pairs) for (const id of [a, b]) if (v && $(id).value !== v) $(id).value = v;
}

function startLevelMeter() {
    const a = track('audio');
    if (analyserSource) { try { analyserSource.disconnect(); } catch (e) { /* gone */ } analyserSource = null; }
    if (!a) { $('mic-level').value = 0; return; }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audioCtx) {
        audioCtx = new Ctx();
        const resume = () => { if (audioCtx && audioCtx.state === 'suspended') audioCtx.resume().catch(() => {}); };
        document.addEventListener('pointerdown', resume, { once: true });
        document.addEventListener('keydown', resume, { once: true });
    }
    analyser = audioCtx.createAnalyser();
    analyser.fftSize = 1024;
    analyserSource = audioCtx.createMediaStreamSource(new MediaStream([a]));
    analyserSource.connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    clearInterval(levelHandle);
    levelHandle = setInterval(() => {
        if (!analyser) return;
        analyser.getFloatTimeDomainData(buf);
        let sum = 0;
        for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
        const rms = Math.sqrt(sum / buf.length);
        const level = media.micMuted ? 0 : Math.min(1, rms * 4);
        const m = $('mic-level');
        m.value = level;
        m.dataset.level = level.toFixed(3);
    }, 100);
}

function stopLocalMedia() {
    clearInterval(levelHandle);
    levelHandle = null;
    if (analyserSource) { try { analyserSource.disconnect(); } catch (e) { /* gone */ } }
    analyser = null;
    if (audioCtx) { audioCtx.close().catch(() => {}); audioCtx = null; }
    for (const t of media.stream.getTracks()) { t.stop(); media.stream.removeTrack(t); }
}

function updateToggleButtons() {
    for (const b of $$('.js-toggle-mic')) {
        b.textContent = media.micMuted ? 'Unmute microphone' : 'Mute microphone';
        b.setAttribute('aria-pressed', String(media.micMuted));
        b.disabled = !track('audio');
    }
    const camOff = media.camOff || !track('video');
    for (const b of $$('.js-toggle-cam')) {
        b.textContent = camOff ? 'Turn camera on' : 'Turn camera off';
        b.setAttribute('aria-pressed', String(camOff));
        // Off but re-enabled by a click, unless there never was a camera.
        b.disabled = !track('video') && !media.camOff && !media.videoId;
    }
}

function toggleMic() {
    const a = track('audio');
    if (!a) return;
    media.micMuted = !media.micMuted;
    a.enabled = !media.micMuted;
    updateToggleButtons();
    announce(media.micMuted ? 'Microphone muted' : 'Microphone on');
}

async function toggleCam() {
    if (!media.camOff && track('video')) {
        // Turning off stops the camera (its light goes out) and sends nothing.
        media.camOff = true;
        await putTrack('video', null);
        announce('Camera off');
    } else {
        let t;
        try {
            t = await getTrack('video', media.videoId);
        } catch (e) {
            announce(deviceErrorText(e, 'camera'), true);
            return;
        }
        media.camOff = false;
        await putTrack('video', t);
        announce('Camera on');
    }
    updateToggleButtons();
}

/* ---------- peers and the call ------------------------------------------------ */

function createLink(id, info, initiator, waitingRelay = false) {
    const info0 = info;
    const old = links.get(id);
    if (old) dropLink(id, false);
    const link = new PeerLink({
        id,
        role: info.role,
        name: info.name,
        initiator,
        waitingRelay,
        stream: media.stream,
        send: (msg) => signal && signal.send(msg),
        onRemoteStream: (stream) => attachRemote(id, stream),
        onChange: () => updateTile(id),
        onSdp: (kind, text) => { qr.lastSdp[kind] = text; },
        onPeerReloaded: () => {
            const info = people.get(id) || { role: info0.role, name: info0.name };
            createLink(id, info, initiator).start(true);
        },
        log: logEvent,
    });
    links.set(id, link);
    qr.peerConnections.set(id, link.pc);
    people.set(id, { ...(people.get(id) || {}), role: info.role, name: info.name || '', connected: true });
    ensureTile(id);
    return link;
}

function dropLink(id, removeTile = true) {
    const link = links.get(id);
    if (link) {
        meter.forget(link);
        link.close();
        links.delete(id);
        qr.peerConnections.delete(id);
        delete qr.quality[id];
    }
    if (removeTile) {
        const tile = tiles.get(id);
        if (tile) tile.remove();
        tiles.delete(id);
        $('remote-empty').hidden = tiles.size > 0;
    }
}

function ensureTile(id) {
    if (tiles.has(id)) return tiles.get(id);
    const frag = $('tpl-remote').content.cloneNode(true);
    const fig = frag.querySelector('figure');
    fig.dataset.participant = id;
    fig.setAttribute('data-testid', 'remote-tile');
    const video = fig.querySelector('video');
    video.setAttribute('data-testid', 'remote-video');
    $('remote-grid').append(fig);
    tiles.set(id, fig);
    $('remote-empty').hidden = true;
    updateTile(id);
    return fig;
}

function attachRemote(id, stream) {
    const fig = ensureTile(id);
    const video = fig.querySelector('video');
    if (video.srcObject !== stream) video.srcObject = stream;
    if (media.sinkId && video.setSinkId) video.setSinkId(media.sinkId).catch(() => {});
    video.play().catch(() => { /* started by the next user gesture */ });
    updateTile(id);
}

function updateTile(id) {
    const fig = tiles.get(id);
    if (!fig) return;
    const p = people.get(id) || {};
    const link = links.get(id);
    const who = displayName(p);
    fig.querySelector('.remote-name').textContent = who;
    fig.querySelector('video').setAttribute('aria-label', `Video of ${who}`);
    let st = '';
    if (p.connected === false) st = '— connection interrupted, waiting for them to come back';
    else if (!link) st = '';
    else if (link.waitingRelay) st = '— waiting for a video server…';
    else if (link.pc.connectionState === 'connecting' || link.pc.connectionState === 'new') st = '— connecting…';
    else if (link.pc.iceConnectionState === 'disconnected' || link.pc.iceConnectionState === 'checking' && link.everConnected) st = '— reconnecting…';
    else if (link.pc.connectionState === 'failed') st = '— connection failed, retrying…';
    fig.querySelector('.remote-state').textContent = st;
    fig.dataset.connection = link ? link.pc.connectionState : 'none';
}

/* The call goes on whatever signaling does: in the call, with audio or video
 * packets received from some peer within MEDIA_GRACE_MS (the quality loop
 * counts them every 2 s). A peer connection's state alone would not do: ICE
 * and DTLS stay "connected" to the relay after the peer has gone. */
function callHolds() {
    return qr.state === 'in-call' && mediaSeenAt > 0 && Date.now() - mediaSeenAt < MEDIA_GRACE_MS;
}

function startTimer() {
    if (timerStart) return;
    timerStart = Date.now();
    const tick = () => {
        const s = Math.floor((Date.now() - timerStart) / 1000);
        const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
        const two = (n) => String(n).padStart(2, '0');
        $('session-timer').textContent = h ? `${h}:${two(m)}:${two(sec)}` : `${two(m)}:${two(sec)}`;
    };
    tick();
    timerHandle = setInterval(tick, 1000);
}

async function sampleQuality() {
    // Signaling away, and the media has now stopped too: say so at once.
    if (qr.conn === 'reconnecting' && !callHolds() && qr.banner.startsWith('callContinues')) showConnBanner('reconnecting');
    const el = $('quality');
    if (!links.size) {
        el.dataset.level = 'unknown';
        el.textContent = 'Connection: waiting for others';
        return;
    }
    const order = { unknown: 0, good: 1, fair: 2, poor: 3 };
    let worst = 'unknown', worstQ = null;
    for (const [id, link] of links) {
        let q;
        try {
            q = await meter.sample(link);
        } catch (e) {
            continue;
        }
        if (!q) continue;
        if (q.stalled === false) mediaSeenAt = Date.now();
        link.onQuality(q);
        qr.quality[id] = q;
        const lv = QualityMeter.level(q);
        if (order[lv] >= order[worst]) { worst = lv; worstQ = q; }
    }
    const words = { unknown: 'checking…', good: 'good', fair: 'fair', poor: 'poor' };
    const prevLevel = el.dataset.level;
    el.dataset.level = worst;
    let detail = '';
    if (worstQ) {
        const parts = [];
        if (worstQ.lossPct !== null && worstQ.lossPct !== undefined) parts.push(`loss ${worstQ.lossPct.toFixed(1)} %`);
        if (worstQ.rttMs !== null) parts.push(`delay ${worstQ.rttMs} ms`);
        if (worstQ.kbpsIn !== null && worstQ.kbpsIn !== undefined) parts.push(`${worstQ.kbpsIn} kbit/s in`);
        if (parts.length) detail = ` (${parts.join(', ')})`;
    }
    el.textContent = `Connection: ${words[worst]}${detail}`;
    // Only level changes are announced; the numbers change every sample.
    el.setAttribute('aria-live', prevLevel !== worst ? 'polite' : 'off');
}

function startQualityLoop() {
    if (qualityHandle) return;
    qualityHandle = setInterval(sampleQuality, 2000);
}

/* ---------- clinician panel ---------------------------------------------------- */

function renderLobby(msg) {
    const waiting = Array.isArray(msg.waiting) ? msg.waiting : [];
    const present = (Array.isArray(msg.present) ? msg.present : []).filter((p) => p.participant !== qr.participant);
    for (const p of [...waiting, ...present]) {
        people.set(p.participant, { ...(people.get(p.participant) || {}), role: p.role, name: p.name || '', connected: p.connected });
    }
    // Keep keyboard focus on the same control across re-renders.
    const active = document.activeElement;
    const focusKey = active && active.dataset && active.dataset.action ? `${active.dataset.action}:${active.dataset.participant}` : null;

    const wl = $('waiting-list');
    wl.textContent = '';
    for (const p of waiting) {
        const li = document.createElement('li');
        li.className = 'person';
        li.dataset.participant = p.participant;
        li.setAttribute('data-testid', 'waiting-person');
        const label = document.createElement('span');
        label.className = 'person-name';
        label.textContent = displayName(p) + (p.connected ? '' : ' — connection interrupted');
        const actions = document.createElement('span');
        actions.className = 'person-actions';
        actions.append(actionButton('admit', p, 'Admit', 'btn-primary'), actionButton('decline', p, 'Decline', 'btn-secondary'));
        li.append(label, actions);
        wl.append(li);
    }
    $('waiting-empty').hidden = waiting.length > 0;
    $('waiting-count').textContent = String(waiting.length);

    const pl = $('present-list');
    pl.textContent = '';
    for (const p of present) {
        const li = document.createElement('li');
        li.className = 'person';
        li.dataset.participant = p.participant;
        li.setAttribute('data-testid', 'present-person');
        const label = document.createElement('span');
        label.className = 'person-name';
        label.textContent = displayName(p) + (p.connected ? '' : ' — connection interrupted');
        const actions = document.createElement('span');
        actions.className = 'person-actions';
        actions.append(actionButton('remove', p, 'Remove', 'btn-danger'));
        li.append(label, actions);
        pl.append(li);
        updateTile(p.participant);
    }
    $('present-empty').hidden = present.length > 0;

    if (focusKey) {
        const again = document.querySelector(`[data-action="${focusKey.split(':')[0]}"][data-participant="${CSS.escape(focusKey.split(':')[1])}"]`);
        if (again) again.focus();
    }
    const newcomers = waiting.filter((p) => !lastWaiting.has(p.participant));
    if (newcomers.length) announce(`${newcomers.map(displayName).join(', ')} ${newcomers.length > 1 ? 'are' : 'is'} waiting to be admitted.`);
    lastWaiting = new Set(waiting.map((p) => p.participant));
    document.title = waiting.length ? `(${waiting.length} waiting) Quietroom` : 'Quietroom video visit';
}
let lastWaiting = new Set();

function actionButton(action, p, word, cls) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `btn btn-small ${cls}`;
    b.textContent = word;
    b.dataset.action = action;
    b.dataset.participant = p.participant;
    b.setAttribute('data-testid', `${action}-${p.participant}`);
    b.setAttribute('aria-label', `${word} ${displayName(p)}`);
    return b;
}

function onPanelClick(ev) {
    const b = ev.target.closest('button[data-action]');
    if (!b || !signal) return;
    const { action, participant } = b.dataset;
    if (!['admit', 'decline', 'remove'].includes(action)) return;
    const p = people.get(participant) || {};
    const go = () => {
        b.disabled = true;
        signal.send({ type: action, participant });
        const words = { admit: 'Admitting', decline: 'Declining', remove: 'Removing' };
        announce(`${words[action]} ${displayName(p)}.`);
    };
    if (action === 'remove') {
        confirmAction({
            title: `Remove ${displayName(p)} from the visit?`,
            text: 'Their video stops at once and their link cannot be used again: they would need a new link to come back.',
            ok: 'Remove',
            returnFocus: b,
            action: go,
        });
    } else {
        go();
    }
}

/* ---------- protocol messages ------------------------------------------------ */

function enterCall() {
    setState('in-call');
    showScreen('call');
    const isClinician = qr.role === 'clinician';
    $('clinician-panel').hidden = !isClinician;
    $('btn-end').hidden = !isClinician;
    $('remote-empty').hidden = tiles.size > 0;
    startQualityLoop();
    attachLocal();
}

function onWelcome(msg) {
    qr.participant = msg.participant;
    qr.role = msg.role;
    document.body.dataset.role = msg.role;
    try { sessionStorage.setItem(RESUME_KEY, msg.resume || ''); } catch (e) { /* private mode */ }
    if (msg.type === 'resumed') {
        qr.reconnects++;
        showConnBanner('');
        announce(STATUS_TEXT.reconnected);
    }
    if (msg.state === 'admitted') {
        if (qr.state !== 'in-call') {
            enterCall();
            announce(msg.role === 'clinician' ? 'You are in the visit. Patients who arrive appear in the waiting room list.' : 'You are in the visit.');
        }
    } else {
        setState('waiting');
        showScreen('waiting');
        if (msg.type === 'welcome') announce('You are in the waiting room. Your clinician will admit you shortly.');
    }
}

/* After a resume: keep the media links the server still has, restart ICE on
 * them (the network may have changed), rebuild the ones this page lost. */
function onPeers(list) {
    const keep = new Set();
    for (const p of Array.isArray(list) ? list : []) {
        keep.add(p.participant);
        people.set(p.participant, { role: p.role, name: p.name || '', connected: p.connected });
        const link = links.get(p.participant);
        if (link && p.waiting_for_relay) {
            link.waitForRelay();
        } else if (link && link.waitingRelay) {
            // A relay came while we were away (its "renegotiate" went to nobody).
            link.relayReady();
        } else if (link) {
            link.restartIce();
        } else {
            // This page was reloaded: a new connection, offered by us whatever our side.
            createLink(p.participant, p, !!p.initiator, !!p.waiting_for_relay).start(true);
        }
        updateTile(p.participant);
    }
    for (const id of Array.from(links.keys())) if (!keep.has(id)) dropLink(id);
}

function onMessage(msg) {
    if (msg.type !== 'pong') logEvent(`received ${msg.type}${msg.type === 'error' ? ` ${msg.code}` : ''}`);
    switch (msg.type) {
    case 'welcome':
    case 'resumed':
        onWelcome(msg);
        break;
    case 'peers':
        onPeers(msg.peers);
        break;
    case 'lobby':
        renderLobby(msg);
        break;
    case 'admitted':
        announce('The clinician admitted you. Connecting…');
        enterCall();
        break;
    case 'peer': {
        const info = { role: msg.role, name: msg.name || '' };
        createLink(msg.participant, info, !!msg.initiator, !!msg.waiting_for_relay).start();
        if (qr.role === 'clinician') startTimer();
        if (qr.state !== 'in-call') enterCall();
        announce(`${displayName(info)} joined the call.${msg.waiting_for_relay ? ` ${RELAY_WAIT_TEXT}` : ''}`);
        break;
    }
    case 'relay_wait': {
        // The video server of this call was lost and no other is ready yet.
        // Said once, not once per peer of a larger visit.
        const link = links.get(msg.participant);
        const already = Array.from(links.values()).some((l) => l.waitingRelay);
        if (link) link.waitForRelay();
        if (!already) announce(RELAY_WAIT_TEXT, true);
        break;
    }
    case 'renegotiate': {
        // A video server for this pair (a new one, or its first): restart ICE on it.
        const link = links.get(msg.participant);
        if (link) link.relayReady();
        break;
    }
    case 'offer': {
        let link = links.get(msg.from);
        if (link && (link.isNewPeerSession(msg.sdp) || link.cannotAnswerFirst())) {
            // They reloaded their page: answer on a fresh connection.
            const info = people.get(msg.from) || { role: link.role, name: link.name };
            const initiator = link.initiator;
            link = createLink(msg.from, info, initiator);
            link.start(false);
        } else if (!link) {
            const info = people.get(msg.from) || { role: 'patient', name: '' };
            link = createLink(msg.from, info, false);
            link.start(false);
        }
        link.onOffer(msg.sdp);
        break;
    }
    case 'answer': {
        const link = links.get(msg.from);
        if (link) link.onAnswer(msg.sdp);
        break;
    }
    case 'peer_status': {
        const p = people.get(msg.participant);
        if (p) {
            p.connected = !!msg.connected;
            updateTile(msg.participant);
            if (links.has(msg.participant)) announce(`${displayName(p)} ${msg.connected ? 'is back' : 'lost their connection; waiting for them to come back'}.`);
        }
        break;
    }
    case 'peer_left': {
        const p = people.get(msg.participant) || {};
        dropLink(msg.participant);
        people.delete(msg.participant);
        announce(`${displayName(p)} left the call.`);
        break;
    }
    case 'declined':
    case 'removed':
    case 'ended':
        finish(msg.reason || msg.type);
        break;
    case 'error':
        onError(msg);
        break;
    default:
        break;
    }
}

function onError(msg) {
    const code = typeof msg.code === 'string' ? msg.code : 'internal';
    if (FATAL_CODES.has(code)) {
        qr.errorCode = code;
        finishWithError(code);
        return;
    }
    // Re-enable the clinician's buttons after a refused action.
    for (const b of $$('#clinician-panel button[data-action]')) b.disabled = false;
    if (code === 'unexpected_answer') return; // renegotiation in progress; retried
    announce(errorText(code), code === 'no_relay_available');
}

/* ---------- the end ------------------------------------------------------------ */

function teardown() {
    for (const id of Array.from(links.keys())) dropLink(id);
    clearInterval(timerHandle);
    clearInterval(qualityHandle);
    qualityHandle = null;
    stopLocalMedia();
    try { sessionStorage.removeItem(RESUME_KEY); } catch (e) { /* private mode */ }
    pendingConfirm = null;
    const d = $('confirm');
    if (d.open) d.close();
    showConnBanner('');
}

function finish(reason) {
    if (qr.state === 'ended') return;
    teardown();
    let [title, text] = reasonText(reason);
    if (reason === 'ended_by_clinician' && qr.role === 'clinician') text = 'You ended the session for everyone.';
    setState('ended');
    $('ended-title').textContent = title;
    $('ended-message').textContent = text;
    $('ended-code').textContent = '';
    $('screen-ended').dataset.reason = reason;
    showScreen('ended');
    announce(`${title}. ${text}`, true);
}

function finishWithError(code) {
    if (qr.state === 'ended') return;
    teardown();
    qr.errorCode = code;
    setState('ended');
    $('ended-title').textContent = errorTitle(code);
    $('ended-message').textContent = errorText(code);
    $('ended-code').textContent = `Code for your clinic’s help desk: ${code}`;
    $('screen-ended').dataset.reason = code;
    showScreen('ended');
    announce(`${errorTitle(code)}. ${errorText(code)}`, true);
}

function onFinal(reason, code) {
    if (qr.state === 'ended') return;
    // resume_invalid after the media stopped too; a transient refusal that lasted.
    if (reason && ERROR_TEXT[reason]) { finishWithError(reason); return; }
    if (reason) { finish(reason); return; }
    const byCode = { 4403: 'removed_by_clinician', 4408: 'waiting_timeout', 4410: 'ended_by_clinician' };
    if (code === 4401) finishWithError(qr.errorCode || 'auth_required');
    else finish(byCode[code] || 'connection_lost');
}

/* The banner while signaling is away (STATUS_TEXT keys), announced
 * (politely) when its reason changes, not at every retry. */
function showConnBanner(key) {
    if (key === qr.banner) return;
    qr.banner = key;
    banner(key ? STATUS_TEXT[key] : '');
    $('conn-banner').dataset.reason = key;
    if (key) announce(STATUS_TEXT[`${key}Announce`] || STATUS_TEXT[key]);
}

/* Signaling lost is not the call lost: while media flows through the relay
 * the page keeps the call and reconnects in the background (signal.js keeps
 * trying as long as callHolds()); only the waiting room and a call without
 * media get the plain "reconnecting" banner. */
function onConnection(state, info = {}) {
    logEvent(`signaling ${state}${info.refused ? ` (last refusal ${info.refused})` : ''}`);
    qr.conn = state;
    if (state === 'reconnecting') {
        if (!callHolds()) showConnBanner('reconnecting');
        else showConnBanner(info.refused === 'resume_invalid' ? 'callContinuesRefused' : 'callContinues');
    } else if (state === 'connecting' && info.refused) {
        showConnBanner('joinRetry');
    } else if (state === 'connected') {
        showConnBanner('');
    }
    document.body.dataset.conn = state;
}

/* ---------- start-up ---------------------------------------------------------- */

function join(credential) {
    if (signal) return;
    $('btn-join').disabled = true;
    $('btn-join').textContent = 'Joining…';
    setState('connecting');
    announce('Joining the visit…');
    if (audioCtx && audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    signal = new SignalClient(signalingUrl(), {
        onMessage,
        onConnection,
        onFinal,
        isFatal: (code) => FATAL_CODES.has(code),
        keepCall: callHolds,
    });
    signal.start(credential);
}

/* A modal confirmation (native <dialog>: focus is trapped, Escape cancels). */
let pendingConfirm = null;

function confirmAction(opts) {
    const d = $('confirm');
    $('confirm-title').textContent = opts.title;
    $('confirm-text').textContent = opts.text;
    $('btn-confirm-ok').textContent = opts.ok;
    pendingConfirm = opts;
    if (typeof d.showModal === 'function') {
        d.showModal();
        $('btn-confirm-cancel').focus();
    } else if (window.confirm(opts.title)) {
        closeConfirm(true);
    }
}

function closeConfirm(ok) {
    const d = $('confirm');
    const opts = pendingConfirm;
    pendingConfirm = null;
    if (d.open) d.close();
    if (!opts) return;
    if (ok) opts.action();
    else if (opts.returnFocus && document.contains(opts.returnFocus)) opts.returnFocus.focus();
}

function wireControls() {
    $('btn-join').addEventListener('click', () => {
        const token = pendingToken;
        pendingToken = null;
        join({ token });
    });
    $('btn-retry-devices').addEventListener('click', () => acquireMedia());
    for (const b of $$('.js-toggle-mic')) b.addEventListener('click', toggleMic);
    for (const b of $$('.js-toggle-cam')) b.addEventListener('click', toggleCam);
    for (const b of $$('.js-leave')) {
        b.addEventListener('click', () => {
            if (!signal) return;
            signal.leave();
            finish('left');
        });
    }
    $('btn-end').addEventListener('click', () => {
        confirmAction({
            title: 'End the session for everyone?',
            text: 'Everyone will be disconnected and the video will stop. This cannot be undone.',
            ok: 'End session',
            returnFocus: $('btn-end'),
            action: () => {
                if (signal) signal.send({ type: 'end' });
                announce('Ending the session…');
            },
        });
    });
    $('btn-confirm-cancel').addEventListener('click', () => closeConfirm(false));
    $('btn-confirm-ok').addEventListener('click', () => closeConfirm(true));
    $('confirm').addEventListener('cancel', () => { pendingConfirm = null; });
    $('btn-settings').addEventListener('click', () => {
        const p = $('settings-panel');
        p.hidden = !p.hidden;
        $('btn-settings').setAttribute('aria-expanded', String(!p.hidden));
    });
    $('clinician-panel').addEventListener('click', onPanelClick);
    const selects = {
        'select-camera': 'videoinput', 'call-select-camera': 'videoinput',
        'select-mic': 'audioinput', 'call-select-mic': 'audioinput',
        'select-speaker': 'audiooutput', 'call-select-speaker': 'audiooutput',
    };
    for (const [id, kind] of Object.entries(selects)) {
        $(id).addEventListener('change', (ev) => switchDevice(kind, ev.target.value));
    }
    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
        navigator.mediaDevices.addEventListener('devicechange', () => fillDevicePickers());
    }
    // Remote audio needs a user gesture in some browsers: retry playback on one.
    document.addEventListener('click', () => {
        for (const v of $$('video')) if (v.paused && v.srcObject) v.play().catch(() => {});
    });
    window.addEventListener('pagehide', () => {
        // Leaving the page (closing the tab) keeps the place for the resume grace.
        for (const l of links.values()) l.close();
    });
}

let pendingToken = null;

async function main() {
    wireControls();
    if (!window.RTCPeerConnection || !window.WebSocket) {
        finish('unsupported');
        return;
    }
    let stored = null;
    try { stored = sessionStorage.getItem(RESUME_KEY) || null; } catch (e) { stored = null; }
    if (bootToken) {
        pendingToken = bootToken;
        try { sessionStorage.removeItem(RESUME_KEY); } catch (e) { /* private mode */ }
        setState('precall');
        showScreen('precall');
        await acquireMedia();
    } else if (stored) {
        // This tab was reloaded during a visit: take the place back at once.
        showScreen('precall');
        setState('precall');
        $('precall-title').textContent = 'Reconnecting to your visit…';
        await acquireMedia();
        join({ resume: stored });
    } else {
        finish('no_token');
    }
}

main();
