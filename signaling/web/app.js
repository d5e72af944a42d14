/* Quietroom browser client: pre-call check, waiting room, clinician controls,
 * the call itself. Speaks docs/protocol.md over one WebSocket; media goes
 * through the relay, end-to-end encrypted (DTLS-SRTP between the browsers).
 *
 * Privacy: nothing here logs the token, the resume secret, SDP or names. */
import { SignalClient, signalingUrl, checkLink } from './signal.js';
import { PeerLink, QualityMeter } from './peers.js';
import { errorText, errorTitle, reasonText, ERROR_TEXT, FATAL_CODES, ROLE_TEXT, STATUS_TEXT } from './messages.js';
import { t, tn, langOf, pickLang, setLang, applyDom } from './i18n.js';
import { Presence } from './presence.js';
import { SpeakerDetector } from './speaker.js';
import { qualityWords } from './quality.js';
import * as stage from './stage.js';
import * as chat from './chat.js';
import * as share from './share.js';
import { initLobby, renderLobby, notifyStatus, stopLobby, resumeTone } from './lobby.js';

/* boot.js already took the token out of the address bar; collect it first. */
const bootToken = typeof window.quietroomTakeToken === 'function' ? window.quietroomTakeToken() : null;

/* The resume secret (docs/protocol.md §5) is the one credential kept outside
 * memory: in sessionStorage, so that a reload of this tab takes its place back
 * without readmission. sessionStorage belongs to this tab alone and is gone
 * when the tab closes; the secret works once, is replaced by every `resumed`,
 * is useless after the server's resume grace, and is removed when the visit
 * ends for this page. The EHR token is never stored anywhere. */
const RESUME_KEY = 'quietroom.resume';
/* For a reload (which has no token): the page's language and the key of the
 * mute/camera preferences (a hash, not the token). */
const LANG_KEY = 'quietroom.lang';
const PREFS_KEY_KEY = 'quietroom.prefskey';
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
    /* The page's language ('en' | 'es'), as <html lang>. */
    lang: 'en',
    /* Outgoing video stopped on purpose to save the connection. */
    audioOnly: false,
    /* Signaling: connecting, connected, reconnecting (see onConnection). */
    conn: 'none',
    /* The banner's reason while signaling is away: callContinues,
     * callContinuesRefused, reconnecting, joinRetry, or '' (none). */
    banner: '',
    /* What happened, for support and tests: no token, SDP, secret or name. */
    events: [],
    /* Test hook: a level ('poor'…) that the audio-only offer takes instead of
     * the measured one (null: measured), for a test without a bad network. */
    forceQuality: null,
    /* Test hook: an ICE restart towards every peer, as after a network change. */
    restartIce: () => { for (const l of links.values()) l.restartIce(); },
    /* Per peer: its data channel's state, and what it told us (presence.js). */
    get channels() { return presence.channels; },
    get peerState() { return presence.publicState(); },
    /* Data-channel messages dropped as invalid. */
    get channelDropped() { return presence.dropped; },
    /* This page shares its screen. */
    get sharing() { return share.sharing(); },
};
Object.defineProperty(window, 'quietroom', { value: qr, configurable: false, writable: false });

function logEvent(text) {
    qr.events.push(`${(performance.now() / 1000).toFixed(2)} ${text}`);
    if (qr.events.length > 200) qr.events.shift();
}

let signal = null;
const links = new Map();            // participant id -> PeerLink
const meter = new QualityMeter();
const people = new Map();           // participant id -> {role, name, connected}
/* Media received this recently keeps the call alive without signaling: a
 * call whose media stopped gets this long to come back (ICE restarts, the
 * peer's network) before a lost signaling connection ends the page. */
const MEDIA_GRACE_MS = 15000;
let mediaSeenAt = 0;
let timerStart = 0;
let timerHandle = null;
let qualityHandle = null;
let tileTick = null;

const presence = new Presence({
    localState: () => ({ mic: !!track('audio') && !media.micMuted, cam: !!track('video') && !media.camOff, share: share.sharing() }),
    links: () => links,
    onPeerChange: (id) => { updateTile(id); renderQuality(); },
    onChat: (id, msg) => chat.receiveChat(id, msg),
    onBye: (id) => peerGone(id),
});
const speakers = new SpeakerDetector((id, speaking) => {
    presence.state(id).speaking = speaking;
    updateTile(id);
});

/* ---------- screens and announcements ---------------------------------------- */

const SCREENS = ['loading', 'precall', 'waiting', 'call', 'ended'];

function showScreen(name) {
    for (const s of SCREENS) $(`screen-${s}`).hidden = s !== name;
    document.body.dataset.screen = name;
    placeMediaButtons(name);
    if (name === 'ended' || name === 'loading') for (const n of $$('#notices > *')) n.hidden = true;
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
    const role = ROLE_TEXT[p.role] || t('role.participant');
    return p.name ? t('role.withName', { name: p.name, role: role.toLocaleLowerCase(qr.lang) }) : role;
}

/* ---------- language ---------------------------------------------------------- */

/* The token claim's language if the catalogue has it, else the browser's,
 * else English; every static text of the page follows. */
function useLang(claim) {
    const lang = setLang(pickLang(claim, navigator.languages || [navigator.language]));
    qr.lang = lang;
    document.documentElement.lang = lang;
    applyDom(document);
    try { sessionStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
    updateToggleButtons();
}

/* The claims of the token (sid, sub, locale), read without verifying: only
 * for the page's own use (language, the preferences' key). Never logged. */
function tokenClaims(token) {
    try {
        const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
        const bin = atob(part + '='.repeat((4 - (part.length % 4)) % 4));
        const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
        const c = JSON.parse(json);
        return c && typeof c === 'object' ? c : {};
    } catch (e) {
        return {};
    }
}

/* ---------- preferences kept across reloads and rejoins -------------------------
 * Mute, camera and audio-only per person and visit, in localStorage under a
 * SHA-256 of sid and sub (not the token, which is never stored). */

let prefsKey = null;

async function prefsKeyFor(claims) {
    if (typeof claims.sid !== 'string' || typeof claims.sub !== 'string') return null;
    if (!window.crypto || !crypto.subtle) return null;
    try {
        const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${claims.sid}\n${claims.sub}`));
        return `quietroom.prefs.${Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('')}`;
    } catch (e) {
        return null;
    }
}

function loadPrefs() {
    if (!prefsKey) return null;
    try {
        const v = JSON.parse(localStorage.getItem(prefsKey) || 'null');
        return v && typeof v === 'object' ? v : null;
    } catch (e) {
        return null;
    }
}

function savePrefs() {
    if (!prefsKey) return;
    try {
        localStorage.setItem(prefsKey, JSON.stringify({
            micMuted: media.micMuted, camOff: media.camOff, audioOnly: qr.audioOnly, at: Date.now(),
        }));
    } catch (e) { /* private mode, full */ }
}

function showRestored(prefs) {
    const lines = [];
    if (prefs.micMuted) lines.push(t('restored.muted'));
    if (prefs.audioOnly) lines.push(t('restored.audioOnly'));
    else if (prefs.camOff) lines.push(t('restored.camOff'));
    const el = $('restored-state');
    el.textContent = lines.join(' ');
    el.hidden = !lines.length;
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

/* what: 'both', 'camera' or 'microphone'. */
function deviceErrorText(err, what) {
    const name = err && err.name;
    if (name === 'NotAllowedError' || name === 'SecurityError') return t(`device.blocked.${what}`);
    const one = what === 'both' ? 'camera' : what;
    if (name === 'NotFoundError' || name === 'OverconstrainedError') return t(`device.notFound.${one}`);
    if (name === 'NotReadableError' || name === 'AbortError') return t(`device.busy.${one}`);
    return t(`device.other.${one}`);
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

/* Join waits while the browser asks for camera and microphone: joining
 * during the prompt would start a call that sends nothing. */
let acquiring = 0;
function setJoinReady() {
    const b = $('btn-join');
    if (signal) return;
    b.disabled = acquiring > 0;
    $('join-hint').textContent = acquiring > 0 ? t('join.waitPrompt') : t('join.hint');
}

/* Asks for camera and microphone; falls back to whichever exists. Without
 * the camera when it is to stay off (restored preferences). */
async function acquireMedia() {
    acquiring++;
    setJoinReady();
    // Join is ready as soon as the prompt is answered (not after the
    // device lists, which can take a while on a busy machine).
    let released = false;
    const release = () => {
        if (released) return;
        released = true;
        acquiring--;
        setJoinReady();
    };
    try {
        await acquireMediaNow(release);
    } finally {
        release();
    }
}

async function acquireMediaNow(release = () => {}) {
    showDeviceError('');
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        showDeviceError(t('device.unsupported'));
        return;
    }
    const wantVideo = !media.camOff;
    for (const t of media.stream.getTracks()) { t.stop(); media.stream.removeTrack(t); }
    let both = null, bothErr = null;
    try {
        both = await navigator.mediaDevices.getUserMedia({
            audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
            video: wantVideo ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false,
        });
    } catch (e) {
        bothErr = e;
    }
    if (both) {
        for (const t of both.getTracks()) media.stream.addTrack(t);
    } else if (bothErr && (bothErr.name === 'NotAllowedError' || bothErr.name === 'SecurityError')) {
        showDeviceError(deviceErrorText(bothErr, wantVideo ? 'both' : 'microphone'));
    } else {
        // One of them may be missing or busy: try each alone.
        const problems = [];
        for (const [kind, what] of [['audio', 'microphone'], ['video', 'camera']]) {
            if (kind === 'video' && !wantVideo) continue;
            try {
                media.stream.addTrack(await getTrack(kind, ''));
            } catch (e) {
                problems.push(deviceErrorText(e, what));
            }
        }
        if (problems.length === 2 && bothErr && bothErr.name === 'NotFoundError') {
            showDeviceError(t('device.noneFound'));
        } else if (problems.length) {
            showDeviceError(problems.join(' '));
        }
    }
    release();
    const a = track('audio'), v = track('video');
    if (a) { media.audioId = a.getSettings().deviceId || media.audioId; a.enabled = !media.micMuted; }
    if (v) media.videoId = v.getSettings().deviceId || media.videoId;
    attachLocal();
    startLevelMeter();
    await fillDevicePickers();
    updateToggleButtons();
}

function attachLocal() {
    // A media element showing a stream without tracks would hold the page's
    // load event forever (it waits for data that never comes): show none.
    const src = media.stream.getTracks().length ? media.stream : null;
    const screen = share.shareTrack();
    const selfSrc = screen ? new MediaStream([screen]) : src;
    const self = $('self-video');
    if (screen ? !(self.srcObject && self.srcObject.getTracks()[0] === screen) : self.srcObject !== src) self.srcObject = selfSrc;
    if (selfSrc) self.play().catch(() => {});
    document.body.classList.toggle('sharing', !!screen);
    for (const id of ['preview', 'waiting-preview']) {
        const v = $(id);
        if (v.srcObject !== src) v.srcObject = src;
        if (src) v.play().catch(() => { /* autoplay of a muted element; retried on gesture */ });
    }
    const off = !track('video') && !screen;
    $('preview-off').hidden = !!track('video');
    $('preview-off').textContent = media.camOff ? t('preview.off') : t('preview.none');
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
        videoinput: [['select-camera', 'call-select-camera'], media.videoId, 'device.cameraN', 'device.noCamera'],
        audioinput: [['select-mic', 'call-select-mic'], media.audioId, 'device.micN', 'device.noMic'],
        audiooutput: [['select-speaker', 'call-select-speaker'], media.sinkId, 'device.speakerN', 'device.systemDefault'],
    };
    for (const [kind, [ids, current, nthKey, noneKey]] of Object.entries(groups)) {
        const list = devices.filter((d) => d.kind === kind && d.deviceId);
        for (const id of ids) {
            const sel = $(id);
            sel.textContent = '';
            if (!list.length) {
                const o = document.createElement('option');
                o.value = '';
                o.textContent = t(noneKey);
                sel.append(o);
                sel.disabled = kind !== 'audiooutput';
                continue;
            }
            sel.disabled = false;
            list.forEach((d, i) => {
                const o = document.createElement('option');
                o.value = d.deviceId;
                o.textContent = d.label || t(nthKey, { n: i + 1 });
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
            if (v.setSinkId) v.setSinkId(deviceId).catch(() => announce(t('device.speakerFailed')));
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
    // While sharing, the screen stays on the video senders; the camera waits.
    if (!(kind === 'video' && share.sharing())) await putOnLinks(kind, t);
    updateToggleButtons();
    presence.sendState();
}

function putOnLinks(kind, t) {
    return Promise.all(Array.from(links.values()).map((l) => l.setTrack(kind, t)));
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
        b.textContent = media.micMuted ? t('media.unmute') : t('media.mute');
        b.setAttribute('aria-pressed', String(media.micMuted));
        b.disabled = !track('audio');
    }
    const camOff = media.camOff || !track('video');
    for (const b of $$('.js-toggle-cam')) {
        b.textContent = camOff ? t('media.camOn') : t('media.camOff');
        b.setAttribute('aria-pressed', String(camOff));
        // Off but re-enabled by a click, unless there never was a camera.
        b.disabled = !track('video') && !media.camOff && !media.videoId;
    }
    const ao = $('btn-audio-only');
    ao.setAttribute('aria-pressed', String(qr.audioOnly));
    ao.disabled = !qr.audioOnly && !track('video');
    $('btn-camera-back').hidden = !qr.audioOnly;
    document.body.classList.toggle('audio-only', qr.audioOnly);
    if (qr.state === 'in-call') presence.sendState();
}

/* The audio-only and camera-back buttons are one pair, moved into the
 * waiting room's or the call's controls (one element per test id). */
function placeMediaButtons(screen) {
    const slot = screen === 'waiting' ? $('waiting-media-slot') : screen === 'call' ? $('call-media-slot') : null;
    if (!slot) return;
    for (const id of ['btn-audio-only', 'btn-camera-back']) slot.append($(id));
    $('btn-audio-only').className = `btn ${screen === 'call' ? 'btn-control' : 'btn-secondary'}`;
}

function toggleMic() {
    const a = track('audio');
    if (!a) return;
    media.micMuted = !media.micMuted;
    a.enabled = !media.micMuted;
    if (!media.micMuted) $('restored-state').hidden = true;
    updateToggleButtons();
    savePrefs();
    presence.sendState();
    announce(media.micMuted ? t('media.muted') : t('media.micOn'));
}

/* Camera off: the track is stopped (its light goes out) and every sender
 * sends nothing (replaceTrack(null)); audio goes on. */
async function cameraOff(audioOnly) {
    media.camOff = true;
    qr.audioOnly = audioOnly;
    // The others hide the picture before its last frame could freeze there.
    presence.sendState();
    if (track('video')) await putTrack('video', null);
    updateToggleButtons();
    savePrefs();
}

async function cameraOn() {
    let tr;
    try {
        tr = await getTrack('video', media.videoId);
    } catch (e) {
        announce(deviceErrorText(e, 'camera'), true);
        return false;
    }
    media.camOff = false;
    qr.audioOnly = false;
    $('restored-state').hidden = true;
    await putTrack('video', tr);
    savePrefs();
    return true;
}

async function toggleCam() {
    if (!media.camOff && track('video')) {
        await cameraOff(false);
        announce(t('media.cameraOff'));
    } else if (await cameraOn()) {
        announce(t('media.cameraOn'));
    }
    updateToggleButtons();
}

async function setAudioOnly(on) {
    hideAudioOnlyOffer();
    if (on) {
        await cameraOff(true);
        announce(t('media.audioOnlyOn'));
    } else if (await cameraOn()) {
        announce(t('media.audioOnlyOff'));
    }
    updateToggleButtons();
}

/* The offer to switch, after POOR_OFFER_MS of poor quality in the call;
 * "Not now" keeps it away for OFFER_SNOOZE_MS. */
const POOR_OFFER_MS = 10000;
const OFFER_SNOOZE_MS = 120000;
let poorSince = 0;
let offerSnoozedUntil = 0;

function considerAudioOnlyOffer(measured) {
    const level = qr.forceQuality || measured;
    const now = Date.now();
    if (level !== 'poor') { poorSince = 0; return; }
    if (!poorSince) poorSince = now;
    if (qr.audioOnly || now < offerSnoozedUntil || now - poorSince < POOR_OFFER_MS) return;
    if (!$('audio-only-offer').hidden) return;
    $('audio-only-offer').hidden = false;
    logEvent('audio-only offered');
}

function hideAudioOnlyOffer() {
    $('audio-only-offer').hidden = true;
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
        onRemoteStream: (stream) => {
            stage.attachStream(id, stream, media.sinkId);
            speakers.watch(id, stream);
            updateTile(id);
        },
        onChange: () => updateTile(id),
        onSdp: (kind, text) => { qr.lastSdp[kind] = text; },
        onPeerReloaded: () => {
            const info = people.get(id) || { role: info0.role, name: info0.name };
            createLink(id, info, initiator).start(true);
        },
        // Only the link that serves id now speaks for it (an old one closing does not).
        onChannel: (kind, event, data) => { if (links.get(id) === link) presence.onChannel(id, link, kind, event, data); },
        // A link made while this page shares sends the screen, not the camera.
        trackFor: (kind) => (kind === 'video' && share.sharing() ? share.shareTrack() : track(kind)),
        log: logEvent,
    });
    links.set(id, link);
    qr.peerConnections.set(id, link.pc);
    presence.linkCreated(id);
    people.set(id, { ...(people.get(id) || {}), role: info.role, name: info.name || '', connected: true });
    stage.ensureTile(id);
    updateTile(id);
    return link;
}

function dropLink(id, removeTile = true, lingerMs = 0) {
    const link = links.get(id);
    if (link) {
        meter.forget(link);
        link.close(lingerMs);
        links.delete(id);
        qr.peerConnections.delete(id);
        delete qr.quality[id];
    }
    if (removeTile) {
        speakers.unwatch(id);
        stage.removeTile(id);
        presence.forget(id);
        chat.forgetPeer(id);
        renderQuality();
    }
}

/* A peer said "bye" on its data channel, or the server says it left: its
 * tile goes at once (the server's peer_left may follow; nothing is left to do then). */
function peerGone(id) {
    if (!links.has(id) && !stage.tileOf(id)) return;
    const p = people.get(id) || {};
    dropLink(id);
    announce(t('announce.left', { who: displayName(p) }));
}

function minSec(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/* The tile's one line of state: interrupted (and for how long) first. */
function tileStateText(p, link, ps) {
    if (link && link.waitingRelay) return t('tile.relay');
    if (ps.interrupted || p.connected === false) {
        return t('tile.interruptedFor', { time: minSec(ps.interruptedSince ? Date.now() - ps.interruptedSince : 0) });
    }
    if (!link) return '';
    if (link.pc.connectionState === 'connecting' || link.pc.connectionState === 'new') return t('tile.connecting');
    if (link.pc.connectionState === 'failed') return t('tile.failed');
    if (ps.share) return t('tile.sharing');
    return '';
}

function updateTile(id) {
    if (!stage.tileOf(id)) return;
    const p = people.get(id) || {};
    const link = links.get(id);
    const ps = presence.state(id);
    const who = displayName(p);
    stage.renderTile(id, {
        name: who,
        label: t('call.videoOf', { who }),
        initials: stage.initials(p.name || displayName(p)),
        connection: link ? link.pc.connectionState : 'none',
        stateText: tileStateText(p, link, ps),
        mic: ps.mic,
        cam: ps.cam,
        share: ps.share,
        speaking: ps.speaking && ps.mic,
        interrupted: ps.interrupted || p.connected === false,
        words: { muted: t('tile.muted'), speaking: t('tile.speaking') },
    });
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

/* The worst measured level of the last sample, and its numbers. */
let measured = { level: 'unknown', q: null };

async function sampleQuality() {
    // Signaling away, and the media has now stopped too: say so at once.
    if (qr.conn === 'reconnecting' && !callHolds() && qr.banner.startsWith('callContinues')) showConnBanner('reconnecting');
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
    measured = { level: worst, q: worstQ };
    renderQuality();
    considerAudioOnlyOffer(links.size ? worst : 'unknown');
}

/* "Connection: weak. Turn your camera off…" in the line; the numbers in the
 * details, for whoever wants them. Called by each sample and whenever a
 * peer's presence changes (an interruption shows at once). */
function renderQuality() {
    const el = $('quality');
    const prevLevel = el.dataset.level;
    const words = qualityWords({
        measured: measured.level,
        reconnecting: presence.anyInterrupted(),
        sendingVideo: !!track('video') && !media.camOff,
        sharing: share.sharing(),
    });
    const level = links.size ? words.level : 'unknown';
    el.dataset.level = level;
    const text = links.size ? t(words.key) : t('quality.others');
    if (el.textContent !== text) el.textContent = text;
    const q = measured.q;
    const parts = [];
    if (q && links.size) {
        const num = new Intl.NumberFormat(qr.lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
        if (q.lossPct !== null && q.lossPct !== undefined) parts.push(t('quality.loss', { n: num.format(q.lossPct) }));
        if (q.rttMs !== null) parts.push(t('quality.delay', { n: q.rttMs }));
        if (q.kbpsIn !== null && q.kbpsIn !== undefined) parts.push(t('quality.kbps', { n: q.kbpsIn }));
    }
    $('quality-details').textContent = parts.length ? parts.join(', ') : t('quality.noDetails');
    // Only level changes are announced; the numbers never are.
    el.setAttribute('aria-live', prevLevel !== level ? 'polite' : 'off');
}

function startQualityLoop() {
    if (qualityHandle) return;
    qualityHandle = setInterval(sampleQuality, 2000);
}

/* ---------- protocol messages ------------------------------------------------ */

function enterCall() {
    // Admitted: the server has ended the check's relay session, and the
    // call's own media must not share the CPU with the check's encoder.
    if (checkAbort) checkAbort.abort();
    setState('in-call');
    showScreen('call');
    const isClinician = qr.role === 'clinician';
    $('clinician-panel').hidden = !isClinician;
    $('btn-end').hidden = !isClinician;
    $('btn-people').hidden = !isClinician;
    // The clinician's panel starts open where there is room beside the video.
    setPanelOpen(isClinician && !narrow());
    $('remote-empty').hidden = stage.tileCount() > 0;
    $('btn-share').hidden = !share.canShare();
    $('btn-fullscreen').hidden = !stage.canFullscreen();
    $('btn-pip').hidden = !stage.canPip();
    startQualityLoop();
    presence.start();
    stage.watchStageSize();
    stage.layout();
    // Interrupted tiles count their seconds.
    clearInterval(tileTick);
    tileTick = setInterval(() => { for (const [id, s] of presence.peerState) if (s.interrupted) updateTile(id); }, 1000);
    attachLocal();
    renderQuality();
    updateClinicianLeft();
}

/* Narrow or short windows (phones, 200 % zoom): panels are drawers. */
function narrow() {
    return window.matchMedia('(max-width: 56rem), (max-height: 31.25rem)').matches;
}

function setPanelOpen(open) {
    $('clinician-panel').hidden = !open;
    $('btn-people').setAttribute('aria-expanded', String(open));
    // On a narrow screen one drawer at a time.
    if (open && narrow() && chat.chatOpen()) chat.setChatOpen(false);
}

function onWelcome(msg) {
    // A welcome to a page that was in the visit before: it took its seat
    // back with its link after its resume failed (signal.js), so its peer
    // connections are stale; the server says whom to connect to again
    // (peers, or peer when back in the call).
    if (msg.type === 'welcome' && qr.participant) for (const id of Array.from(links.keys())) dropLink(id);
    qr.participant = msg.participant;
    qr.role = msg.role;
    document.body.dataset.role = msg.role;
    // The claim names a language of the catalogue other than the one shown.
    if (langOf(msg.locale) && langOf(msg.locale) !== qr.lang) useLang(msg.locale);
    try { sessionStorage.setItem(RESUME_KEY, msg.resume || ''); } catch (e) { /* private mode */ }
    if (msg.type === 'resumed') {
        qr.reconnects++;
        showConnBanner('');
        announce(STATUS_TEXT.reconnected);
    }
    if (msg.rejoined) {
        logEvent('rejoined');
        const el = $('rejoined-notice');
        el.textContent = t('call.rejoined');
        el.hidden = false;
        setTimeout(() => { el.hidden = true; }, 8000);
    }
    if (msg.state === 'admitted') {
        if (qr.state !== 'in-call') {
            enterCall();
            announce(msg.rejoined ? t('call.rejoined') : msg.role === 'clinician' ? t('announce.inVisitClinician') : t('announce.inVisit'));
        }
    } else {
        setState('waiting');
        showScreen('waiting');
        renderWaitingRoom();
        if (msg.type === 'welcome') announce(msg.rejoined ? t('call.rejoined') : t('waiting.announce'));
        startConnectionCheck();
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

/* ---------- the waiting room that talks --------------------------------------- */

const room = { clinicians: null, waitedSince: 0 };
let waitingTick = null;

function onRoom(msg) {
    const list = Array.isArray(msg.clinicians) ? msg.clinicians : [];
    room.clinicians = list.map((c) => ({ participant: c.participant, name: typeof c.name === 'string' ? c.name : '', connected: c.connected !== false }));
    if (Number.isFinite(msg.waited_s)) room.waitedSince = Date.now() - msg.waited_s * 1000;
    renderWaitingRoom();
    updateClinicianLeft();
}

function renderWaitingRoom() {
    const el = $('waiting-clinician');
    const list = room.clinicians;
    if (!list) {
        el.textContent = t('waiting.message');
    } else if (!list.length) {
        el.textContent = t('waiting.noClinician');
    } else {
        const here = list.find((c) => c.connected) || list[0];
        const name = here.name || t('role.clinician');
        el.textContent = here.connected ? t('waiting.clinician', { name }) : t('waiting.clinicianAway', { name });
    }
    if (!room.waitedSince) room.waitedSince = Date.now();
    const tick = () => {
        const m = Math.floor((Date.now() - room.waitedSince) / 60000);
        $('waiting-time').textContent = m < 1 ? t('waiting.time0') : tn('waiting.time', m);
    };
    tick();
    clearInterval(waitingTick);
    waitingTick = qr.state === 'waiting' ? setInterval(tick, 15000) : null;
}

/* An admitted non-clinician whose room has no clinician any more. */
function updateClinicianLeft() {
    const show = qr.state === 'in-call' && qr.role !== 'clinician' && Array.isArray(room.clinicians) && room.clinicians.length === 0;
    const el = $('clinician-left');
    if (show && el.hidden) announce(t('call.clinicianLeft'));
    el.hidden = !show;
    document.body.classList.toggle('clinician-left', show);
}

/* A clinician's message: shown, announced (the region is aria-live polite),
 * never stored or logged. */
function onNotice(msg) {
    if (typeof msg.text !== 'string' || !msg.text) return;
    $('waiting-notice-from').textContent = msg.from ? t('waiting.noticeFrom', { name: String(msg.from) }) : t('waiting.noticeFromClinic');
    $('waiting-notice').textContent = msg.text;
    $('waiting-notice').hidden = false;
    $('waiting-notice-box').hidden = false;
}

/* ---------- connection check through the relay (check.js) ---------------------- */

let checkStarted = false;
let checkAbort = null;
const checkListeners = new Set();

function startConnectionCheck() {
    if (checkStarted || !signal) return;
    checkStarted = true;
    $('check-running').hidden = false;
    checkAbort = typeof AbortController === 'function' ? new AbortController() : null;
    // check.js (written separately) sends check_offer/check_answer/check_result
    // itself; this page only shows what it found. Missing or failing: soft.
    import('./check.js').then((m) => {
        Promise.resolve().then(() => m.runConnectionCheck({
            send: (obj) => !!(signal && signal.send(obj)),
            subscribe: (fn) => { checkListeners.add(fn); return () => checkListeners.delete(fn); },
            signal: checkAbort ? checkAbort.signal : undefined,
        })).then((result) => showCheckResult(result), (e) => {
            logEvent(`connection check failed (${e && e.name ? e.name : 'error'})`);
            showCheckResult(null);
        });
    }, () => {
        // No check.js on this server: no check, and nothing to say about it.
        logEvent('connection check unavailable');
        $('check-box').hidden = true;
    });
}

function showCheckResult(r) {
    $('check-running').hidden = true;
    const el = $('check-result');
    const details = $('check-details');
    if (!r || !['good', 'weak', 'none'].includes(r.video)) {
        el.hidden = false;
        el.dataset.video = '';
        el.dataset.transport = '';
        el.textContent = t('check.failed');
        details.hidden = true;
        return;
    }
    if (r.reason === 'aborted') return;
    const transport = ['udp', 'tcp', 'none'].includes(r.transport) ? r.transport : 'none';
    el.dataset.video = r.video;
    el.dataset.transport = transport;
    // check.js names its sentence (check_good…); this page's catalogue has them.
    const SENTENCES = {
        check_good: 'check.good', check_weak: 'check.weak', check_none: 'check.none',
        check_none_limit: 'check.noneLimit', check_none_no_relay: 'check.noneNoRelay',
    };
    el.textContent = t(SENTENCES[r.sentence] || `check.${r.video}`);
    el.hidden = false;
    const vars = { loss: Number(r.loss_pct) || 0, rtt: Number(r.rtt_ms) || 0, kbps: Number(r.kbps) || 0 };
    details.textContent = t(transport === 'tcp' ? 'check.viaTcp' : 'check.details', vars);
    details.hidden = r.video === 'none' && transport === 'none';
    logEvent(`connection check: ${r.video} ${transport}`);
}

function onMessage(msg) {
    if (msg.type !== 'pong') logEvent(`received ${msg.type}${msg.type === 'error' ? ` ${msg.code}` : ''}`);
    for (const fn of checkListeners) { try { fn(msg); } catch (e) { /* the check's own problem */ } }
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
    case 'room':
        onRoom(msg);
        break;
    case 'notice':
        onNotice(msg);
        break;
    case 'notified':
        notifyStatus(tn('panel.notified', Number(msg.count) || 0));
        break;
    case 'admitted':
        announce(t('announce.admitted'));
        enterCall();
        break;
    case 'peer': {
        const info = { role: msg.role, name: msg.name || '' };
        createLink(msg.participant, info, !!msg.initiator, !!msg.waiting_for_relay).start();
        if (qr.role === 'clinician') startTimer();
        if (qr.state !== 'in-call') enterCall();
        announce(`${t('announce.joined', { who: displayName(info) })}${msg.waiting_for_relay ? ` ${t('announce.relayWait')}` : ''}`);
        break;
    }
    case 'relay_wait': {
        // The video server of this call was lost and no other is ready yet.
        // Said once, not once per peer of a larger visit.
        const link = links.get(msg.participant);
        const already = Array.from(links.values()).some((l) => l.waitingRelay);
        if (link) link.waitForRelay();
        if (!already) announce(t('announce.relayWait'), true);
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
            if (msg.rejoined) p.rejoined = true;
            if (links.has(msg.participant)) presence.setServerConnected(msg.participant, p.connected);
            updateTile(msg.participant);
            const who = displayName(p);
            if (msg.rejoined && msg.connected) announce(t('announce.rejoined', { who }));
            else if (links.has(msg.participant)) announce(msg.connected ? t('announce.back', { who }) : t('announce.lost', { who }));
        }
        break;
    }
    case 'peer_left':
        peerGone(msg.participant);
        people.delete(msg.participant);
        break;
    case 'replaced':
        finish('replaced');
        break;
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
        finishWithError(code, Number.isFinite(msg.not_before) ? msg.not_before : null);
        return;
    }
    // Re-enable the clinician's buttons after a refused action.
    for (const b of $$('#clinician-panel button[data-action]')) b.disabled = false;
    $('btn-admit-all').disabled = false;
    if (code === 'unexpected_answer') return; // renegotiation in progress; retried
    // The connection check's own refusals (check.js shows them in the box).
    if (code === 'check_limit' || (code === 'no_relay_available' && qr.state === 'waiting')) return;
    if (msg.field === 'text' || (code === 'not_waiting' && $('notify-target').value)) {
        notifyStatus(errorText(code));
    }
    announce(errorText(code), code === 'no_relay_available');
}

/* ---------- the end ------------------------------------------------------------ */

function teardown() {
    presence.sendBye();
    presence.stop();
    share.stopShare();
    // The "bye" just sent gets a moment to leave before the connections close.
    for (const id of Array.from(links.keys())) dropLink(id, true, 300);
    stage.removeAllTiles();
    speakers.close();
    chat.clearChat();
    clearInterval(tileTick);
    clearInterval(timerHandle);
    clearInterval(qualityHandle);
    clearInterval(waitingTick);
    stopLobby();
    qualityHandle = null;
    if (checkAbort) checkAbort.abort();
    stopLocalMedia();
    try { sessionStorage.removeItem(RESUME_KEY); } catch (e) { /* private mode */ }
    pendingConfirm = null;
    const d = $('confirm');
    if (d.open) d.close();
    showConnBanner('');
}

function showEnded(title, text, code, reason) {
    setState('ended');
    $('ended-title').textContent = title;
    $('ended-message').textContent = text;
    $('ended-code').textContent = code ? t('ended.code', { code }) : '';
    $('screen-ended').dataset.reason = reason;
    showScreen('ended');
    announce(`${title}. ${text}`, true);
}

function finish(reason) {
    if (qr.state === 'ended') return;
    teardown();
    let [title, text] = reasonText(reason);
    if (reason === 'ended_by_clinician' && qr.role === 'clinician') text = t('ended.youEnded');
    // The code line names why for the help desk and the tests ('replaced').
    showEnded(title, text, reason === 'replaced' ? reason : '', reason);
}

/* "This link opens at 2:30 PM on Tuesday, December 8", in the page's
 * language and the person's time zone. */
function opensAt(notBefore) {
    const d = new Date(notBefore * 1000);
    try {
        const time = new Intl.DateTimeFormat(qr.lang, { hour: 'numeric', minute: '2-digit' }).format(d);
        const date = new Intl.DateTimeFormat(qr.lang, { weekday: 'long', day: 'numeric', month: 'long' }).format(d);
        return t('ended.notBefore', { time, date });
    } catch (e) {
        return t('ended.notBefore', { time: d.toLocaleTimeString(), date: d.toLocaleDateString() });
    }
}

function finishWithError(code, notBefore = null) {
    if (qr.state === 'ended') return;
    teardown();
    qr.errorCode = code;
    const text = code === 'token_not_yet_valid' && notBefore ? opensAt(notBefore) : errorText(code);
    showEnded(errorTitle(code), text, code, code);
}

function onFinal(reason, code) {
    if (qr.state === 'ended') return;
    // resume_invalid after the media stopped too; a transient refusal that lasted.
    if (reason && ERROR_TEXT[reason] && reason !== 'removed_by_clinician' && reason !== 'declined_by_clinician') { finishWithError(reason); return; }
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
    $('btn-join').textContent = t('join.joining');
    setState('connecting');
    announce(t('join.announce'));
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

/* A modal confirmation (native <dialog>: focus is trapped, Escape cancels).
 * opts.danger: the OK button is red (End, Remove); else neutral (Leave). */
let pendingConfirm = null;

function confirmAction(opts) {
    const d = $('confirm');
    $('confirm-title').textContent = opts.title;
    $('confirm-text').textContent = opts.text;
    $('btn-confirm-ok').textContent = opts.ok;
    $('btn-confirm-ok').className = `btn ${opts.danger ? 'btn-danger' : 'btn-primary'}`;
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
        if (acquiring > 0) return;
        const token = pendingToken;
        pendingToken = null;
        join({ token });
    });
    $('btn-retry-devices').addEventListener('click', () => acquireMedia());
    for (const b of $$('.js-toggle-mic')) b.addEventListener('click', toggleMic);
    for (const b of $$('.js-toggle-cam')) b.addEventListener('click', toggleCam);
    $('btn-audio-only').addEventListener('click', () => setAudioOnly(!qr.audioOnly));
    $('btn-camera-back').addEventListener('click', () => setAudioOnly(false));
    $('btn-audio-only-accept').addEventListener('click', () => setAudioOnly(true));
    $('btn-audio-only-dismiss').addEventListener('click', () => {
        offerSnoozedUntil = Date.now() + OFFER_SNOOZE_MS;
        hideAudioOnlyOffer();
    });
    for (const b of $$('.js-leave')) {
        b.addEventListener('click', () => {
            if (!signal) return;
            confirmAction({
                title: t('confirm.leaveTitle'),
                text: t('confirm.leaveText'),
                ok: t('confirm.leaveOk'),
                returnFocus: b,
                action: () => {
                    if (!signal) return;
                    signal.leave();
                    finish('left');
                },
            });
        });
    }
    $('btn-end').addEventListener('click', () => {
        confirmAction({
            title: t('confirm.endTitle'),
            text: t('confirm.endText'),
            ok: t('confirm.endOk'),
            danger: true,
            returnFocus: $('btn-end'),
            action: () => {
                // No "bye" yet: the others leave with the server's "ended"
                // (teardown), not before the end has really happened.
                if (signal) signal.send({ type: 'end' });
                announce(t('announce.ending'));
            },
        });
    });
    $('btn-confirm-cancel').addEventListener('click', () => closeConfirm(false));
    $('btn-confirm-ok').addEventListener('click', () => closeConfirm(true));
    $('confirm').addEventListener('cancel', () => { pendingConfirm = null; });
    $('btn-settings').addEventListener('click', () => {
        const p = $('settings-panel');
        p.hidden = !p.hidden;
        // The device pickers take the More menu's place.
        $('more-menu').hidden = true;
        $('btn-more').setAttribute('aria-expanded', 'false');
        $('btn-settings').setAttribute('aria-expanded', String(!p.hidden));
    });
    $('btn-admit-all').addEventListener('click', () => {
        if (!signal) return;
        $('btn-admit-all').disabled = true;
        signal.send({ type: 'admit_all' });
        announce(t('panel.admittingAll'));
        setTimeout(() => { $('btn-admit-all').disabled = false; }, 1500);
    });
    initLobby({
        people,
        self: () => qr.participant,
        connected: () => !!signal,
        send: (msg) => signal && signal.send(msg),
        displayName, announce, logEvent, confirmAction, updateTile,
    });
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
        resumeTone();
        speakers.resume();
    });
    window.addEventListener('pagehide', () => {
        // Leaving the page (closing the tab) keeps the place for the resume
        // grace; the others' tiles of this page go at once ("bye").
        presence.sendBye();
        for (const l of links.values()) l.close();
    });
    document.addEventListener('visibilitychange', () => presence.sendState());
    wireCallControls();
}

/* The call's own controls: share, chat, people, the More menu, details. */
function wireCallControls() {
    chat.initChat({
        send: (encoded) => presence.broadcast(encoded),
        nameOf: (id) => displayName(people.get(id) || {}),
        t,
        announce: (text) => announce(text),
        onToggle: (open) => { if (open && narrow()) setPanelOpen(false); },
    });
    share.initShare({
        putVideo: (tr) => putOnLinks('video', tr),
        cameraTrack: () => (media.camOff ? null : track('video')),
        onChange: (on) => {
            const b = $('btn-share');
            b.setAttribute('aria-pressed', String(on));
            b.textContent = on ? t('call.stopShare') : t('call.share');
            $('sharing-banner').hidden = !on;
            attachLocal();
            presence.sendState();
            renderQuality();
            if (qr.state === 'in-call') announce(on ? t('call.shareStarted') : t('call.shareStopped'));
        },
    });
    $('btn-share').addEventListener('click', async () => {
        if (share.sharing()) { await share.stopShare(); return; }
        const r = await share.startShare();
        if (!r.ok && r.error && r.error !== 'NotAllowedError' && r.error !== 'AbortError') announce(t('call.shareFailed'), true);
    });
    $('btn-stop-share').addEventListener('click', () => { share.stopShare(); $('btn-share').focus(); });
    $('btn-people').addEventListener('click', () => setPanelOpen($('clinician-panel').hidden));
    // Escape closes an open drawer (narrow screens), as it closes a menu.
    document.addEventListener('keydown', (ev) => {
        if (ev.key !== 'Escape' || !narrow() || $('confirm').open) return;
        if (chat.chatOpen()) {
            chat.setChatOpen(false);
            $('btn-chat').focus();
        } else if (!$('clinician-panel').hidden && qr.role === 'clinician') {
            setPanelOpen(false);
            $('btn-people').focus();
        }
    });
    $('btn-panel-close').addEventListener('click', () => { setPanelOpen(false); $('btn-people').focus(); });
    wirePopover('btn-more', 'more-menu');
    wirePopover('btn-quality-details', 'quality-details');
    $('btn-fullscreen').addEventListener('click', () => stage.toggleFullscreen().catch(() => {}));
    document.addEventListener('fullscreenchange', () => {
        const on = !!document.fullscreenElement;
        $('btn-fullscreen').setAttribute('aria-pressed', String(on));
        $('btn-fullscreen').textContent = on ? t('call.exitFullscreen') : t('call.fullscreen');
    });
    $('btn-pip').addEventListener('click', () => stage.togglePip().catch(() => {}));
}

/* A button that shows and hides a small panel above the controls; Escape
 * or a click elsewhere closes it. */
function wirePopover(buttonId, panelId) {
    const b = $(buttonId), p = $(panelId);
    const set = (open) => { p.hidden = !open; b.setAttribute('aria-expanded', String(open)); };
    b.addEventListener('click', () => set(p.hidden));
    document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape' && !p.hidden) { set(false); b.focus(); } });
    document.addEventListener('click', (ev) => { if (!p.hidden && !p.contains(ev.target) && !b.contains(ev.target)) set(false); });
}

let pendingToken = null;

/* Mute, camera and audio-only as this person left them in this visit. */
function restorePrefs() {
    const prefs = loadPrefs();
    if (!prefs) return null;
    media.micMuted = !!prefs.micMuted;
    qr.audioOnly = !!prefs.audioOnly;
    media.camOff = !!prefs.camOff || qr.audioOnly;
    return prefs;
}

async function main() {
    wireControls();
    let stored = null;
    let storedLang = null;
    try {
        stored = sessionStorage.getItem(RESUME_KEY) || null;
        storedLang = sessionStorage.getItem(LANG_KEY) || null;
    } catch (e) { stored = null; }
    const claims = bootToken ? tokenClaims(bootToken) : {};
    useLang(bootToken ? claims.locale : storedLang);
    if (!window.RTCPeerConnection || !window.WebSocket) {
        finish('unsupported');
        return;
    }
    if (bootToken) {
        pendingToken = bootToken;
        try { sessionStorage.removeItem(RESUME_KEY); } catch (e) { /* private mode */ }
        // The link first: a refused one never reaches the camera prompt.
        setState('checking-link');
        $('loading-title').textContent = t('checking.title');
        $('loading-text').textContent = t('checking.text');
        const [check, key] = await Promise.all([checkLink(signalingUrl(), bootToken), prefsKeyFor(claims)]);
        if (!check.ok) {
            pendingToken = null;
            finishWithError(check.code, check.notBefore);
            return;
        }
        if (check.locale) useLang(check.locale);
        prefsKey = key;
        try { sessionStorage.setItem(PREFS_KEY_KEY, key || ''); } catch (e) { /* private mode */ }
        const prefs = restorePrefs();
        setState('precall');
        showScreen('precall');
        await acquireMedia();
        if (prefs) showRestored(prefs);
    } else if (stored) {
        // This tab was reloaded during a visit: take the place back at once.
        try { prefsKey = sessionStorage.getItem(PREFS_KEY_KEY) || null; } catch (e) { prefsKey = null; }
        const prefs = restorePrefs();
        showScreen('precall');
        setState('precall');
        $('precall-title').textContent = t('precall.reconnecting');
        await acquireMedia();
        if (prefs) showRestored(prefs);
        join({ resume: stored });
    } else {
        finish('no_token');
    }
}

main();
