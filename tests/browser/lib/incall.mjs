// Helpers for issue 14's in-call suites (incall.test.mjs, layout.test.mjs,
// the Firefox data-channel test): what the other side shows of a person
// (their tile's data attributes), when it changed, chat through the data
// channel, and what a page decodes. Driver-neutral: page.evaluate and
// page.click only (Playwright's Chromium pages and lib/netns.mjs's Firefox
// pages alike); functions given to evaluate close over nothing.
import { waitFor } from './servers.mjs';

/* Starts watching, in `page`, the tile of participant `pid` until its
 * attribute `attr` equals `value` (or, attr null, until the tile is gone).
 * Returns a handle: `await h.at()` is the page's Date.now() of the first
 * mutation that made it so (the same machine's clock as the test's). */
export async function watchTile(page, pid, attr, value) {
    const key = `${pid}|${attr}|${value}|${Math.random().toString(36).slice(2)}`;
    await page.evaluate(([k, p, a, v]) => {
        window.__qrWatch = window.__qrWatch || {};
        const sel = `[data-testid="remote-tile"][data-participant="${CSS.escape(p)}"]`;
        const hit = () => {
            const el = document.querySelector(sel);
            return a === null ? !el : !!el && el.getAttribute(a) === v;
        };
        if (hit()) { window.__qrWatch[k] = -1; return; } // already so: the test's mistake
        const mo = new MutationObserver(() => {
            if (window.__qrWatch[k] || !hit()) return;
            window.__qrWatch[k] = Date.now();
            mo.disconnect();
        });
        mo.observe(document.body, { subtree: true, childList: true, attributes: true });
    }, [key, pid, attr, value]);
    return {
        at: (timeout = 5000) => waitFor(`${page.qrName}: tile ${pid} ${attr === null ? 'gone' : `${attr}="${value}"`}`, async () => {
            const t = await page.evaluate((k) => window.__qrWatch[k], key);
            if (t === -1) throw new Error(`tile ${pid} was already ${attr}="${value}" before the action`);
            return t;
        }, { timeout, interval: 50 }),
    };
}

/* Watches as watchTile does, runs `action`, and returns how many ms after
 * the action the other page showed it: after the moment `action` returns
 * (a timestamp: clickTimed's, when the click reached the page), else after
 * the moment it was started. */
export async function msUntilShown(page, pid, attr, value, action, timeout = 5000) {
    const h = await watchTile(page, pid, attr, value);
    const t0 = Date.now();
    const at = await action();
    return (await h.at(timeout)) - (typeof at === 'number' ? at : t0);
}

/* Clicks the control and returns the page's Date.now() when the click event
 * reached it (a capturing listener on the document, before the page's own):
 * the person's action, without the test driver's own delay (a loaded
 * machine can take seconds between page.click() and the event). */
export async function clickTimed(page, testid) {
    await page.evaluate((id) => {
        window.__qrClicks = window.__qrClicks || {};
        delete window.__qrClicks[id];
        document.addEventListener('click', (ev) => {
            const el = ev.target.closest && ev.target.closest(`[data-testid="${id}"]`);
            if (el && !window.__qrClicks[id]) window.__qrClicks[id] = Date.now();
        }, { capture: true });
    }, testid);
    await page.click(`[data-testid="${testid}"]`);
    return waitFor(`${page.qrName}: the click on ${testid}`, () => page.evaluate((id) => window.__qrClicks[id], testid), { timeout: 5000, interval: 20 });
}

export async function tileAttrs(page, pid) {
    return page.evaluate((p) => {
        const el = document.querySelector(`[data-testid="remote-tile"][data-participant="${CSS.escape(p)}"]`);
        if (!el) return null;
        const shown = (x) => !!x && !x.closest('[hidden]') && x.getClientRects().length > 0;
        const q = (id) => el.querySelector(`[data-testid="${id}"]`);
        const v = q('remote-video');
        return {
            mic: el.dataset.mic, cam: el.dataset.cam, sharing: el.dataset.sharing, speaking: el.dataset.speaking,
            interrupted: el.dataset.interrupted, connection: el.dataset.connection,
            videoShown: shown(v), videoW: v ? v.videoWidth : 0, videoH: v ? v.videoHeight : 0, videoTime: v ? v.currentTime : 0,
            avatarShown: shown(q('remote-avatar')), avatar: q('remote-avatar') ? q('remote-avatar').textContent.trim() : null,
            mutedShown: shown(q('remote-muted')), muted: q('remote-muted') ? q('remote-muted').textContent.trim() : null,
            state: q('remote-state') ? q('remote-state').textContent.trim() : null, stateShown: shown(q('remote-state')),
            name: q('remote-name') ? q('remote-name').textContent.trim() : null,
        };
    }, pid);
}

export async function tileIds(page) {
    return page.evaluate(() => Array.from(document.querySelectorAll('[data-testid="remote-tile"]'), (el) => el.dataset.participant || '?'));
}

/* Inbound video from one peer (its RTCPeerConnection in
 * window.quietroom.peerConnections): frames decoded and the last frame's
 * size, from getStats. */
export async function inboundVideo(page, pid) {
    return page.evaluate(async (p) => {
        const pc = window.quietroom.peerConnections.get(p);
        if (!pc) return null;
        const out = { framesDecoded: 0, frameWidth: 0, frameHeight: 0 };
        (await pc.getStats()).forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video') {
                out.framesDecoded += s.framesDecoded || 0;
                if (s.frameWidth) [out.frameWidth, out.frameHeight] = [s.frameWidth, s.frameHeight];
            }
        });
        return out;
    }, pid);
}

/* The mean colour of the tile's <video> as drawn now (a 32x18 canvas):
 * [r, g, b], or null while it has no frame. */
export async function videoColour(page, pid) {
    return page.evaluate((p) => {
        const el = document.querySelector(`[data-testid="remote-tile"][data-participant="${CSS.escape(p)}"] [data-testid="remote-video"]`);
        if (!el || !el.videoWidth) return null;
        const c = document.createElement('canvas');
        [c.width, c.height] = [32, 18];
        const g = c.getContext('2d');
        g.drawImage(el, 0, 0, 32, 18);
        const d = g.getImageData(0, 0, 32, 18).data;
        const m = [0, 0, 0];
        for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) m[k] += d[i + k];
        return m.map((x) => Math.round(x / (d.length / 4)));
    }, pid);
}

/* What the suites' Chromium sends (visitSuite fakeCamera, lib/browsers.mjs
 * writeFakeCamera): its camera is solid magenta 640x480, its fake screen
 * Chromium's green 1280x720 test pattern. */
export const SOURCES = {
    camera: { aspect: 640 / 480, colour: ([r, g, b]) => r > 170 && b > 170 && g < 90 },
    screen: { aspect: 1280 / 720, colour: ([r, g, b]) => g > 90 && r < 90 && b < 90 },
};

/* Waits until the peer's video is decoded as `kind` (SOURCES): frames of
 * its aspect ratio (±0.05) both in getStats and in the tile's <video>, its
 * colour in the <video>, and the frame count rising over that. Returns the
 * samples. */
export async function waitDecoding(page, pid, kind, { timeout = 15000 } = {}) {
    const want = SOURCES[kind];
    let last = null;
    const a = await waitFor(`${page.qrName}: the ${kind} of ${pid} decoded`, async () => {
        const s = await inboundVideo(page, pid);
        const t = await tileAttrs(page, pid);
        const colour = await videoColour(page, pid);
        last = { s, t, colour };
        if (!s || !t || !s.frameHeight || !t.videoH || !t.videoShown || !colour) return false;
        return Math.abs(s.frameWidth / s.frameHeight - want.aspect) < 0.05 && Math.abs(t.videoW / t.videoH - want.aspect) < 0.05 &&
            want.colour(colour) && s;
    }, { timeout, interval: 200 }).catch((e) => { throw new Error(`${e.message}; last ${JSON.stringify(last)}`); });
    const b = await waitFor(`${page.qrName}: frames of ${pid} still rising`, async () => {
        const s = await inboundVideo(page, pid);
        return s.framesDecoded >= a.framesDecoded + 5 && s;
    }, { timeout: 5000, interval: 250 });
    return { a, b, video: last.t, colour: last.colour };
}

/* Types `text` into the chat and sends it (chat-input, chat-send), opening
 * the panel first if it is closed. Setting the value plus an input event, as
 * typing does, in both drivers. */
export async function sendChat(page, msg) {
    await openChat(page);
    await page.evaluate((m) => {
        const el = document.querySelector('[data-testid="chat-input"]');
        el.focus();
        el.value = m;
        el.dispatchEvent(new Event('input', { bubbles: true }));
    }, msg);
    await page.click('[data-testid="chat-send"]');
}

export async function openChat(page) {
    const open = await page.evaluate(() => {
        const p = document.querySelector('[data-testid="chat-panel"]');
        return !!p && !p.closest('[hidden]') && p.getClientRects().length > 0;
    });
    if (!open) {
        await page.click('[data-testid="chat-toggle"]');
        await waitFor(`${page.qrName}: chat panel open`, () => page.evaluate(() => {
            const p = document.querySelector('[data-testid="chat-panel"]');
            return !!p && !p.closest('[hidden]') && p.getClientRects().length > 0;
        }), { timeout: 5000 });
    }
}

/* The chat log as the page shows it: each message's sender attribute,
 * author, text, and what is inside its text (elements, links). */
export async function chatMessages(page) {
    return page.evaluate(() => Array.from(document.querySelectorAll('[data-testid="chat-log"] [data-testid="chat-message"]'), (m) => {
        const t = m.querySelector('[data-testid="chat-text"]');
        const a = m.querySelector('[data-testid="chat-author"]');
        return {
            from: m.dataset.from, author: a ? a.textContent.trim() : null, text: t ? t.textContent : null,
            elements: t ? Array.from(t.querySelectorAll('*'), (e) => e.tagName.toLowerCase()) : [],
            links: t ? Array.from(t.querySelectorAll('a'), (e) => ({ href: e.getAttribute('href'), target: e.getAttribute('target'), rel: e.getAttribute('rel'), text: e.textContent })) : [],
        };
    }));
}

/* Waits until a message whose text contains `needle` is in the page's chat
 * log; returns it. */
export async function waitChat(page, needle, timeout = 5000) {
    return waitFor(`${page.qrName}: a chat message with "${needle.slice(0, 40)}"`, async () =>
        (await chatMessages(page)).find((m) => (m.text || '').includes(needle)), { timeout, interval: 50 });
}

/* How responsive the page's main thread is: the round trip of an evaluate,
 * animation frames over `ms`, and the long tasks (PerformanceObserver
 * 'longtask') in that time. For a failure's message and the log. */
export async function responsiveness(page, ms = 1000) {
    const t0 = Date.now();
    await page.evaluate(() => 1);
    const evalMs = Date.now() - t0;
    const r = await page.evaluate((w) => new Promise((resolve) => {
        let frames = 0;
        let longMs = 0;
        let po = null;
        try {
            po = new PerformanceObserver((l) => { for (const e of l.getEntries()) longMs += e.duration; });
            po.observe({ type: 'longtask' });
        } catch (e) { /* not supported */ }
        // Attribute changes meanwhile, by attribute: a layout loop shows here.
        const changes = {};
        const mo = new MutationObserver((l) => {
            for (const m of l) if (m.type === 'attributes') {
                const k = `${m.target.id || m.target.dataset.testid || m.target.tagName.toLowerCase()}@${m.attributeName}`;
                changes[k] = (changes[k] || 0) + 1;
            }
        });
        mo.observe(document.body, { subtree: true, attributes: true });
        const start = performance.now();
        const tick = () => { frames++; if (performance.now() - start < w) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
        setTimeout(() => {
            if (po) po.disconnect();
            mo.disconnect();
            const busiest = Object.entries(changes).sort((a, b) => b[1] - a[1]).slice(0, 4);
            resolve({ frames, longMs: Math.round(longMs), busiest });
        }, w + 50);
    }), ms);
    return { evalMs, rafPerSec: Math.round(r.frames * 1000 / ms), longTaskMs: r.longMs, attributeChanges: r.busiest };
}

/* Clicks `testid` (share) and returns when the screen was picked: the
 * moment getDisplayMedia resolved in the page (its picker closes then; the
 * fake capture resolves it by itself, after the capture started, which on
 * a loaded machine takes seconds). Also { clickAt } on the function's
 * `last` property, for the log. */
export async function shareTimed(page, testid = 'share') {
    await page.evaluate(() => {
        window.__qrPickedAt = 0;
        if (window.__qrGdmWrapped) return;
        window.__qrGdmWrapped = true;
        const md = navigator.mediaDevices;
        const orig = md.getDisplayMedia.bind(md);
        md.getDisplayMedia = async (...a) => {
            const s = await orig(...a);
            window.__qrPickedAt = Date.now();
            return s;
        };
    });
    const clickAt = await clickTimed(page, testid);
    const picked = await waitFor(`${page.qrName}: getDisplayMedia resolved`, () => page.evaluate(() => window.__qrPickedAt), { timeout: 10000, interval: 20 });
    shareTimed.last = { clickAt, picked };
    return picked;
}
