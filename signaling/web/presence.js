/* What each browser of the call tells the others about itself, end to end
 * on the data channels: its state (mic, camera, sharing, hidden), a
 * heartbeat, and "bye" when it leaves. From these (and the server's
 * peer_status and ICE) this page knows, per peer, whether it is muted, has
 * its camera off, shares, or is interrupted, and since when. */
import { parseChannelMessage, encodeState, encodeHb, encodeBye, interruptAfterMs, RateLimit, HB_INTERVAL_MS, HB_HIDDEN_INTERVAL_MS } from './channel.js';

const STATE_FIELDS = ['mic', 'cam', 'share', 'hidden'];
// A person changes state a few times a minute; a page sending more than
// this is broken or hostile, and each change re-lays the stage.
const STATE_RATE = [10, 1000];

const CHECK_MS = 50;
// A check this late means this page itself was frozen (a busy CPU, a
// background tab): the beats it did not read prove nothing about the peer.
const STALLED_SELF_MS = 400;

function freshState() {
    // Until the peer says otherwise: as a person joins, with mic and camera on.
    return {
        mic: true, cam: true, share: false, hidden: false, interrupted: false, speaking: false,
        lastHb: 0, serverLost: false, iceLost: false, channelLost: false, interruptedSince: 0,
    };
}

export class Presence {
    /* h: {localState() -> {mic, cam, share}, links() -> Map(id -> PeerLink),
     *     onPeerChange(id), onChat(id, msg), onBye(id)} */
    constructor(h) {
        this.h = h;
        this.peerState = new Map();     // exposed as quietroom.peerState
        this.channels = new Map();      // exposed as quietroom.channels
        this.dropped = 0;
        this.stateLimits = new Map();   // participant id -> RateLimit
        this.hbTimer = null;
        this.checkTimer = null;
        this.lastHbSent = 0;
        this.lastCheck = 0;
    }

    start() {
        if (this.hbTimer) return;
        this.hbTimer = setInterval(() => this.beat(), HB_INTERVAL_MS);
        this.checkTimer = setInterval(() => this.check(), CHECK_MS);
    }

    stop() {
        clearInterval(this.hbTimer);
        clearInterval(this.checkTimer);
        this.hbTimer = this.checkTimer = null;
    }

    /* What the page shows of each peer (quietroom.peerState): a copy. */
    publicState() {
        const out = new Map();
        for (const [id, s] of this.peerState) {
            out.set(id, { mic: s.mic, cam: s.cam, share: s.share, hidden: s.hidden, interrupted: s.interrupted, speaking: s.speaking });
        }
        return out;
    }

    state(id) {
        if (!this.peerState.has(id)) this.peerState.set(id, freshState());
        return this.peerState.get(id);
    }

    /* A new link to id (first, or after a reload): its channels start over. */
    linkCreated(id) {
        this.channels.set(id, { state: 'connecting' });
        const s = this.state(id);
        s.lastHb = 0;
        s.channelLost = false;
    }

    forget(id) {
        this.peerState.delete(id);
        this.channels.delete(id);
        this.stateLimits.delete(id);
    }

    /* PeerLink's onChannel, for the link currently serving id. */
    onChannel(id, link, kind, event, data) {
        // A message redraws only what it changed (four heartbeats a second
        // per peer must not re-render the page).
        if (event === 'message') { this.onMessage(id, kind, data); return; }
        if (kind === 'main') {
            this.channels.set(id, { state: link.channelState('main') });
            if (event === 'open') link.sendOn('main', encodeState(this.local()));
        }
        if (event === 'close' && !link.closed) this.state(id).channelLost = true;
        if (event === 'open') this.state(id).channelLost = false;
        this.h.onPeerChange(id);
    }

    onMessage(id, kind, data) {
        const m = parseChannelMessage(typeof data === 'string' ? data : null);
        // Heartbeats only on their channel, the rest only on the main one.
        if (!m || (m.t === 'hb') !== (kind === 'hb')) { this.dropped++; return; }
        const s = this.state(id);
        if (m.t === 'hb') {
            s.lastHb = performance.now();
        } else if (m.t === 'state') {
            if (!this.stateLimits.has(id)) this.stateLimits.set(id, new RateLimit(...STATE_RATE));
            if (!this.stateLimits.get(id).allow()) { this.dropped++; return; }
            const changed = STATE_FIELDS.some((k) => s[k] !== m[k]);
            for (const k of STATE_FIELDS) s[k] = m[k];
            s.lastHb = performance.now(); // its interval may have just changed
            if (changed) this.h.onPeerChange(id);
        } else if (m.t === 'chat') {
            this.h.onChat(id, m);
        } else if (m.t === 'bye') {
            this.h.onBye(id);
        }
    }

    local() {
        return { ...this.h.localState(), hidden: document.visibilityState === 'hidden' };
    }

    /* Our state changed (mute, camera, share, tab hidden): tell everyone. */
    sendState() {
        const text = encodeState(this.local());
        for (const link of this.h.links().values()) link.sendOn('main', text);
    }

    sendBye() {
        for (const link of this.h.links().values()) link.sendOn('main', encodeBye());
    }

    /* Sends to every open link; the number it went to. */
    broadcast(text) {
        let n = 0;
        for (const link of this.h.links().values()) if (link.sendOn('main', text)) n++;
        return n;
    }

    beat() {
        const now = performance.now();
        const hidden = document.visibilityState === 'hidden';
        if (hidden && now - this.lastHbSent < HB_HIDDEN_INTERVAL_MS - 50) return;
        this.lastHbSent = now;
        const hb = encodeHb();
        for (const link of this.h.links().values()) link.sendOn('hb', hb);
    }

    setServerConnected(id, connected) {
        this.state(id).serverLost = !connected;
        this.check(performance.now(), true);
    }

    /* Interrupted: no heartbeat for three beats (once they ever came), the
     * server lost the peer, its channel closed under a live link, or ICE
     * lost the path. */
    check(now = performance.now(), told = false) {
        // Told by the server: nothing to doubt about this page's own timers.
        const selfStalled = !told && this.lastCheck && now - this.lastCheck > STALLED_SELF_MS;
        if (!told) this.lastCheck = now;
        for (const [id, link] of this.h.links()) {
            const s = this.state(id);
            if (selfStalled) {
                // Judge again next round, with a fresh grace for those not yet interrupted.
                if (s.lastHb && !s.interrupted) s.lastHb = Math.max(s.lastHb, now - HB_INTERVAL_MS);
                continue;
            }
            const ice = link.pc.iceConnectionState;
            s.iceLost = link.everConnected && (ice === 'disconnected' || ice === 'failed' || ice === 'checking');
            const late = s.lastHb > 0 && now - s.lastHb > interruptAfterMs(s.hidden);
            const interrupted = late || s.serverLost || s.iceLost || s.channelLost;
            if (interrupted !== s.interrupted) {
                s.interrupted = interrupted;
                s.interruptedSince = interrupted ? Date.now() : 0;
                this.h.onPeerChange(id);
            }
        }
    }

    anyInterrupted() {
        for (const id of this.h.links().keys()) if (this.state(id).interrupted) return true;
        return false;
    }
}
