/* The signaling connection: one WebSocket to /ws (subprotocol quietroom.v1),
 * authenticated by the EHR token once, then kept alive across drops with the
 * resume secret the server issues (exponential backoff within the server's
 * resume grace). Nothing here logs a token, a resume secret or SDP.
 *
 * While the page's media still flows (handlers.keepCall() says so), losing
 * signaling is not the end of the call: the media goes through the relay,
 * which does not depend on signaling. The client then keeps trying to resume
 * past the grace, and even after a refused resume (resume_invalid: a
 * restarted server may still be catching up), with the same secret, until
 * keepCall() says the media has stopped too. */

const SUBPROTOCOL = 'quietroom.v1';
const PING_EVERY_MS = 15000;
const PONG_WAIT_MS = 8000;
/* After the browser reports it is online again (Wi-Fi to LTE, a laptop lid)
 * the socket may be dead without the browser knowing: ask at once, and give
 * up on it quickly. */
const ONLINE_PONG_WAIT_MS = 3000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
const FIRST_CONNECT_GIVE_UP_MS = 30000;
/* Refusals of an auth or resume that mean "not now" (the server could not
 * record the join or the new secret, and undid it): the same credential is
 * offered again with backoff, for up to this long. */
const TRANSIENT_CODES = new Set(['state_unavailable', 'token_claim_unavailable']);
const TRANSIENT_GIVE_UP_MS = 120000;

/* Close codes after which the server does not want us back (docs/protocol.md §2). */
const TERMINAL_CLOSE = new Set([1009, 4400, 4401, 4403, 4408, 4410, 4429]);

export function signalingUrl(loc = window.location) {
    const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${loc.host}/ws`;
}

/* Asks the server whether the link would be accepted, without using it up
 * and before the page asks for camera and microphone (check_link): resolves
 * {ok: true, locale, role} or {ok: false, code, notBefore}. A server that
 * cannot say (an older one refusing the message type, no answer in time, no
 * connection) resolves {ok: true, unchecked: true}: the real `auth` at Join
 * decides then. Nothing here logs the token. */
const CHECK_TIMEOUT_MS = 8000;
/* Answers that say nothing about the link itself: the server cannot check
 * (older, busy, restarting); Join will try for real. */
const CHECK_UNSUPPORTED = new Set(['unknown_type', 'auth_required', 'bad_json', 'missing_field', 'bad_field',
    'state_unavailable', 'token_claim_unavailable', 'server_busy', 'server_draining', 'token_replay_cache_full',
    'rate_limited', 'internal', 'message_too_large']);

export function checkLink(url, token, timeoutMs = CHECK_TIMEOUT_MS) {
    return new Promise((resolve) => {
        let ws, done = false;
        const end = (result) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            try { if (ws) ws.close(1000); } catch (e) { /* closing */ }
            resolve(result);
        };
        const timer = setTimeout(() => end({ ok: true, unchecked: true }), timeoutMs);
        try {
            ws = new WebSocket(url, SUBPROTOCOL);
        } catch (e) {
            end({ ok: true, unchecked: true });
            return;
        }
        ws.onopen = () => ws.send(JSON.stringify({ type: 'check_link', token }));
        ws.onmessage = (ev) => {
            let msg;
            try { msg = JSON.parse(ev.data); } catch (e) { return; }
            if (!msg || typeof msg !== 'object') return;
            if (msg.type === 'link_ok') {
                end({ ok: true, locale: typeof msg.locale === 'string' ? msg.locale : '', role: msg.role || null });
            } else if (msg.type === 'error') {
                const code = typeof msg.code === 'string' ? msg.code : 'internal';
                if (CHECK_UNSUPPORTED.has(code)) end({ ok: true, unchecked: true });
                else end({ ok: false, code, notBefore: Number.isFinite(msg.not_before) ? msg.not_before : null });
            }
        };
        ws.onerror = () => { /* onclose follows */ };
        ws.onclose = () => end({ ok: true, unchecked: true });
    });
}

export class SignalClient {
    /* handlers: onMessage(msg), onConnection(state, info), onFinal(reason, code),
     *           isFatal(code), keepCall() (true while media still flows) */
    constructor(url, handlers) {
        this.url = url;
        this.h = handlers;
        this.ws = null;
        this.token = null;
        this.resume = null;
        this.graceMs = 60000;
        this.authenticated = false;  // a welcome/resumed was seen on some socket
        this.sentCredential = false; // the token went out on a socket
        this.final = false;
        this.done = false;           // onFinal was called
        this.attempt = 0;
        this.droppedAt = 0;
        this.firstTryAt = 0;
        this.retryTimer = null;
        this.pingTimer = null;
        this.pongTimer = null;
        this.pongDeadline = 0;
        this.finalReason = null;
        this.heldToken = null;       // the token, until the server answered it
        this.link = null;            // the token, kept to take the seat back (never logged)
        this.rejoinTried = false;    // since the last welcome
        this.refusal = null;         // a refusal on this socket we retry after
        this.lastRefusal = null;     // the last one, for the final screen
        this.refusedSince = 0;       // first transient refusal of a join
        this.onOnline = () => {
            if (this.final) return;
            if (this.ws === null && this.retryTimer !== null) {
                // Waiting out a backoff: try now.
                clearTimeout(this.retryTimer);
                this.retryTimer = null;
                this.open();
            } else if (this.ws && this.ws.readyState === WebSocket.OPEN) {
                this.checkAlive(ONLINE_PONG_WAIT_MS);
            }
        };
        window.addEventListener('online', this.onOnline);
    }

    /* Joins with the EHR token (used once), or with a stored resume secret. */
    start({ token = null, resume = null }) {
        this.token = token;
        this.link = token;
        this.resume = resume;
        this.firstTryAt = Date.now();
        this.open();
    }

    open() {
        if (this.final) return;
        let ws;
        try {
            ws = new WebSocket(this.url, SUBPROTOCOL);
        } catch (e) {
            this.scheduleRetry();
            return;
        }
        this.ws = ws;
        if (!this.authenticated && this.attempt === 0) this.h.onConnection('connecting', { attempt: 0 });
        ws.onopen = () => {
            if (ws !== this.ws) return;
            if (this.resume && (this.authenticated || !this.token)) {
                // Each secret works once; the reply (resumed) brings a new one.
                ws.send(JSON.stringify({ type: 'resume', resume: this.resume }));
            } else if (this.token) {
                const token = this.token;
                // Single use: sent again only if the server says it did not
                // record it (token_claim_unavailable, state_unavailable).
                this.token = null;
                this.heldToken = token;
                this.sentCredential = true;
                ws.send(JSON.stringify({ type: 'auth', token }));
            } else {
                this.finish('connection_lost', 0);
                return;
            }
            this.startPing();
        };
        let ready = false; // this socket got welcome or resumed
        ws.onmessage = (ev) => {
            if (ws !== this.ws) return;
            this.gotTraffic();
            let msg;
            try {
                msg = JSON.parse(ev.data);
            } catch (e) {
                return;
            }
            if (!msg || typeof msg !== 'object') return;
            if (msg.type === 'error' && !ready && this.retryAfter(msg.code)) {
                // Handled here: no error screen. The server closes the
                // socket; we do too, in case it does not.
                this.refusal = msg.code;
                this.lastRefusal = msg.code;
                try { ws.close(1000); } catch (e) { /* closing */ }
                return;
            }
            if (msg.type === 'welcome' || msg.type === 'resumed') {
                ready = true;
                this.heldToken = null;
                this.refusedSince = 0;
                this.lastRefusal = null;
                this.authenticated = true;
                this.rejoinTried = false;
                this.resume = typeof msg.resume === 'string' ? msg.resume : null;
                if (Number.isFinite(msg.resume_grace_s)) this.graceMs = msg.resume_grace_s * 1000;
                this.attempt = 0;
                this.droppedAt = 0;
                this.h.onConnection('connected', { type: msg.type });
            } else if (msg.type === 'declined' || msg.type === 'removed' || msg.type === 'ended') {
                this.final = true;
                this.resume = null;
            } else if (msg.type === 'replaced') {
                // Another tab or window took this seat: its secret is void,
                // so no resume is tried (docs/protocol.md §5).
                this.final = true;
                this.resume = null;
                this.finalReason = 'replaced';
            } else if (msg.type === 'error' && msg.code && this.isFatal(msg.code)) {
                this.final = true;
                this.resume = null;
                this.heldToken = null;
            }
            this.h.onMessage(msg);
        };
        ws.onclose = (ev) => {
            if (ws !== this.ws) return;
            this.ws = null;
            this.stopPing();
            if (this.final) {
                this.finish(this.finalReason || null, ev.code);
            } else if (this.refusal) {
                this.refusal = null;
                this.scheduleRetry();
            } else if (TERMINAL_CLOSE.has(ev.code)) {
                this.finish(null, ev.code);
            } else if (ev.code === 1000 && ev.reason === 'replaced') {
                this.finish('replaced', ev.code);
            } else if (!this.authenticated && this.sentCredential) {
                // The token went out but no answer came back: it may be used up.
                this.finish('connection_lost', ev.code);
            } else {
                this.scheduleRetry();
            }
        };
        ws.onerror = () => { /* onclose follows */ };
    }

    isFatal(code) {
        return this.h.isFatal ? this.h.isFatal(code) : false;
    }

    keepCall() {
        return this.h.keepCall ? !!this.h.keepCall() : false;
    }

    /* A refusal of this socket's auth or resume that we try again after:
     * a transient one (the same credential), or a refused resume (the same
     * secret while the call's media still flows, else the link once).
     * Anything else is the server's last word. */
    retryAfter(code) {
        if (TRANSIENT_CODES.has(code)) {
            if (!this.refusedSince) this.refusedSince = Date.now();
            if (this.heldToken) {
                // The sign-in was undone: the same link works again.
                this.token = this.heldToken;
                this.heldToken = null;
                this.sentCredential = false;
            }
            return this.token !== null || this.resume !== null;
        }
        if (code !== 'resume_invalid' || !this.authenticated) return false;
        // While media flows: the same secret again (a restarted server may
        // still be catching up). Otherwise the link may take the seat back.
        return (this.resume !== null && this.keepCall()) || (this.link !== null && !this.rejoinTried);
    }

    /* The resume secret can no longer bring us back (the grace ran out, or
     * the server refused it): the link can, once per drop, since a link
     * takes its own seat back (docs/protocol.md §5) — into the waiting
     * room, or the call if we were in it moments ago. */
    rejoinWithLink() {
        if (!this.link || this.rejoinTried) return false;
        this.rejoinTried = true;
        this.token = this.link;
        this.resume = null;
        this.lastRefusal = null;
        this.droppedAt = Date.now();
        return true;
    }

    scheduleRetry() {
        if (this.final) return;
        const now = Date.now();
        const transient = TRANSIENT_CODES.has(this.lastRefusal);
        if (this.authenticated) {
            if (!this.droppedAt) this.droppedAt = now;
            // While media flows the call goes on, and so do we. Otherwise stay
            // inside the server's grace, leaving a second for the round trip.
            const keep = this.resume && this.keepCall();
            if (!keep && (now - this.droppedAt > this.graceMs - 1000 || !this.resume ||
                          this.lastRefusal === 'resume_invalid')) {
                if (!this.rejoinWithLink()) {
                    this.finish(this.lastRefusal === 'resume_invalid' ? 'resume_invalid' : 'connection_lost', 0);
                    return;
                }
            }
        } else if (transient ? now - this.refusedSince > TRANSIENT_GIVE_UP_MS
            : now - this.firstTryAt > FIRST_CONNECT_GIVE_UP_MS) {
            this.finish(transient ? this.lastRefusal : 'connection_lost', 0);
            return;
        }
        const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
        const delay = Math.round(base * (0.8 + Math.random() * 0.4));
        this.attempt++;
        this.h.onConnection(this.authenticated ? 'reconnecting' : 'connecting',
            { attempt: this.attempt, delay, refused: this.lastRefusal });
        this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.open();
        }, delay);
    }

    startPing() {
        this.stopPing();
        this.pingTimer = setInterval(() => this.checkAlive(PONG_WAIT_MS), PING_EVERY_MS);
    }

    /* Sends a ping; if nothing at all arrives within `wait` ms the socket is
     * dead although the browser has not noticed: drop it and resume. */
    checkAlive(wait) {
        if (!this.send({ type: 'ping' })) return;
        const deadline = Date.now() + wait;
        if (this.pongTimer && this.pongDeadline <= deadline) return; // an earlier deadline stands
        clearTimeout(this.pongTimer);
        this.pongDeadline = deadline;
        this.pongTimer = setTimeout(() => {
            this.pongTimer = null;
            this.drop();
        }, wait);
    }

    stopPing() {
        clearInterval(this.pingTimer);
        this.pingTimer = null;
        clearTimeout(this.pongTimer);
        this.pongTimer = null;
    }

    gotTraffic() {
        clearTimeout(this.pongTimer);
        this.pongTimer = null;
    }

    send(obj) {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
        this.ws.send(JSON.stringify(obj));
        return true;
    }

    /* Gives up on the current socket (it stopped answering) and reconnects. */
    drop() {
        const ws = this.ws;
        if (!ws) return;
        this.ws = null;
        this.stopPing();
        try { ws.close(); } catch (e) { /* already closing */ }
        this.scheduleRetry();
    }

    /* Leaves for good: the server forgets us, no resume. */
    leave() {
        this.send({ type: 'leave' });
        this.finalReason = 'left';
        this.final = true;
        this.resume = null;
        const ws = this.ws;
        if (ws) setTimeout(() => { try { ws.close(1000); } catch (e) { /* closed */ } }, 300);
        else this.finish('left', 1000);
    }

    finish(reason, code) {
        if (this.done) return;
        this.done = true;
        this.final = true;
        this.resume = null;
        this.heldToken = null;
        this.stopPing();
        clearTimeout(this.retryTimer);
        window.removeEventListener('online', this.onOnline);
        this.h.onFinal(reason, code);
    }
}
