/* The messages browsers of one call send each other on their data channels
 * (docs: the issue 14 contract). Pure: no DOM, no WebRTC, so Node can import
 * it for a unit test. Everything a peer sends is untrusted: a message that is
 * not exactly one of the shapes below is dropped, never half-used. */

export const CHANNEL = Object.freeze({
    main: { label: 'quietroom', init: { negotiated: true, id: 0, ordered: true } },
    hb: { label: 'quietroom-hb', init: { negotiated: true, id: 1, ordered: false, maxRetransmits: 0 } },
});

export const MAX_MESSAGE_BYTES = 4096;
export const MAX_CHAT_CHARS = 1000;
export const HB_INTERVAL_MS = 250;
export const HB_HIDDEN_INTERVAL_MS = 1000;

const CHAT_ID = /^[A-Za-z0-9_-]{1,32}$/;
const STATE_KEYS = ['mic', 'cam', 'share', 'hidden'];

function byteLength(text) {
    return new TextEncoder().encode(text).length;
}

function onlyKeys(obj, keys) {
    return Object.keys(obj).every((k) => keys.includes(k));
}

/* Each type's check: true if `m` (a parsed object with that `t`) is valid. */
const VALID = {
    state: (m) => onlyKeys(m, ['t', ...STATE_KEYS]) && STATE_KEYS.every((k) => typeof m[k] === 'boolean'),
    chat: (m) => onlyKeys(m, ['t', 'id', 'text']) && typeof m.id === 'string' && CHAT_ID.test(m.id) &&
        typeof m.text === 'string' && m.text.length >= 1 && m.text.length <= MAX_CHAT_CHARS && m.text.trim() !== '',
    bye: (m) => onlyKeys(m, ['t']),
    hb: (m) => onlyKeys(m, ['t']),
};

/* text (what a channel delivered) → a valid message object, or null. */
export function parseChannelMessage(text) {
    if (typeof text !== 'string' || text.length > MAX_MESSAGE_BYTES || byteLength(text) > MAX_MESSAGE_BYTES) return null;
    let m;
    try {
        m = JSON.parse(text);
    } catch (e) {
        return null;
    }
    if (!m || typeof m !== 'object' || Array.isArray(m) || typeof m.t !== 'string') return null;
    const check = Object.prototype.hasOwnProperty.call(VALID, m.t) ? VALID[m.t] : null;
    return check && check(m) ? m : null;
}

export function encodeState({ mic, cam, share, hidden }) {
    return JSON.stringify({ t: 'state', mic: !!mic, cam: !!cam, share: !!share, hidden: !!hidden });
}

/* null if the text cannot be sent as it is (empty, too long). */
export function encodeChat(id, text) {
    const out = JSON.stringify({ t: 'chat', id, text });
    return parseChannelMessage(out) ? out : null;
}

export const encodeBye = () => '{"t":"bye"}';
export const encodeHb = () => '{"t":"hb"}';

/* How long without a heartbeat before a peer counts as interrupted: three
 * missed beats and a little jitter, longer while its page is hidden (a
 * background tab's timers run at most once a second). */
export function interruptAfterMs(hidden) {
    return 3 * (hidden ? HB_HIDDEN_INTERVAL_MS : HB_INTERVAL_MS) + 150;
}

/* A random message id, unique enough to tell two messages apart. */
export function newChatId(random = Math.random) {
    let s = '';
    for (let i = 0; i < 16; i++) s += 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(random() * 36)];
    return s;
}

/* Splits chat text into plain parts and web links: [{text}] or [{text, href}].
 * Only http: and https: become links; anything else (javascript:, data:)
 * stays text. The caller renders with textContent and createElement('a'). */
export function linkParts(text) {
    const parts = [];
    const re = /\bhttps?:\/\/[^\s<>"']+/gi;
    let at = 0, m;
    while ((m = re.exec(text)) !== null) {
        // A sentence's closing punctuation is not part of the address.
        const raw = m[0].replace(/[.,;:!?)\]]+$/, '');
        let href = null;
        try {
            const u = new URL(raw);
            // user@host addresses hide the real host behind a familiar name.
            if ((u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password) href = u.href;
        } catch (e) { href = null; }
        if (!href) continue;
        if (m.index > at) parts.push({ text: text.slice(at, m.index) });
        parts.push({ text: raw, href });
        at = m.index + raw.length;
        re.lastIndex = at;
    }
    if (at < text.length) parts.push({ text: text.slice(at) });
    return parts;
}

/* At most `max` events per `windowMs` (a sliding window): a peer flooding
 * the chat has the excess dropped instead of filling the screen. */
export class RateLimit {
    constructor(max = 20, windowMs = 10000) {
        this.max = max;
        this.windowMs = windowMs;
        this.times = [];
    }

    allow(now = Date.now()) {
        while (this.times.length && now - this.times[0] >= this.windowMs) this.times.shift();
        if (this.times.length >= this.max) return false;
        this.times.push(now);
        return true;
    }
}
