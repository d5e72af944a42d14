// Test instrumentation for the connection check (issue 18 item 4): a page's
// own signaling connection, usable from page.evaluate in both Chromium and
// Firefox. Installed before the page's scripts (addInitScript /
// evaluateOnNewDocument), SIGNAL_TAP wraps WebSocket so that every socket the
// page opens with the quietroom.v1 subprotocol is known, and gives
// window.__qrSignalTap:
//   send(obj)      on the page's newest open signaling socket (false if none)
//   subscribe(fn)  fn(msg) for every message any of them receives; returns
//                  the unsubscribe function
//   received, sent every message each way, SDP replaced by its length (the
//                  tests read lobby, check_* and error messages from them)
// The page keeps using its sockets as before: this only listens, and sends
// what the test asks it to (the check's messages, as the page's own code
// will once it runs the check itself).
export const SIGNAL_TAP = `(() => {
    const Native = window.WebSocket;
    const sockets = [];
    const listeners = new Set();
    const strip = (m) => {
        if (!m || typeof m !== 'object') return m;
        const c = { ...m };
        if (typeof c.sdp === 'string') c.sdp = c.sdp.length;
        if (typeof c.token === 'string') c.token = '…';
        if (typeof c.resume === 'string') c.resume = '…';
        return c;
    };
    const tap = {
        received: [],
        sent: [],
        socket() {
            for (let i = sockets.length - 1; i >= 0; i--) if (sockets[i].readyState === Native.OPEN) return sockets[i];
            return null;
        },
        send(obj) {
            const ws = tap.socket();
            if (!ws) return false;
            ws.send(JSON.stringify(obj));
            return true;
        },
        subscribe(fn) {
            listeners.add(fn);
            return () => listeners.delete(fn);
        },
        listeners: () => listeners.size,
    };
    class TappedWebSocket extends Native {
        constructor(url, protocols) {
            super(url, protocols);
            if (!String(protocols || '').includes('quietroom')) return;
            sockets.push(this);
            this.addEventListener('message', (ev) => {
                let msg;
                try { msg = JSON.parse(ev.data); } catch (e) { return; }
                tap.received.push(strip(msg));
                for (const fn of Array.from(listeners)) {
                    try { fn(msg); } catch (e) { /* the listener's */ }
                }
            });
        }
        send(data) {
            try { tap.sent.push(strip(JSON.parse(data))); } catch (e) { /* not JSON */ }
            return super.send(data);
        }
    }
    window.WebSocket = TappedWebSocket;
    Object.defineProperty(window, '__qrSignalTap', { value: tap });
})();`;

/* Runs the connection check in `page` (waiting room) through the page's
 * own signaling connection: import('/check.js') and runConnectionCheck with
 * the tap's send/subscribe. Resolves to { res, ms, phases, listenersLeft }. */
export async function driveCheck(page, { durationMs = 6000 } = {}) {
    return page.evaluate(async ([durationMs]) => {
        const { runConnectionCheck } = await import('/check.js');
        const tap = window.__qrSignalTap;
        const phases = [];
        const t0 = performance.now();
        const res = await runConnectionCheck({
            send: (m) => tap.send(m),
            subscribe: (fn) => tap.subscribe(fn),
            durationMs,
            onProgress: (p) => phases.push(`${p}@${Math.round(performance.now() - t0)}`),
        });
        return { res, ms: Math.round(performance.now() - t0), phases, listenersLeft: tap.listeners() };
    }, [durationMs]);
}

/* Messages of `type` the page received (or sent: dir 'sent') so far. */
export async function tapped(page, type, dir = 'received') {
    return page.evaluate(([type, dir]) => window.__qrSignalTap[dir].filter((m) => m && m.type === type), [type, dir]);
}
