/* The clinician's panel: who waits (how long, their connection check),
 * who is in the call, admit / decline / remove, a message to the waiting
 * room, and the arrival alert (a tone, a desktop notification without the
 * name). The server's lobby message is its only input; names and notices
 * are shown, never logged. */
import { t, tn } from './i18n.js';

const $ = (id) => document.getElementById(id);
let ctx = null;

/* c: {people (Map), self() -> own participant id, connected(), send(msg),
 *     displayName(p), announce(text), logEvent(text), confirmAction(opts),
 *     updateTile(id)} */
export function initLobby(c) {
    ctx = c;
    $('clinician-panel').addEventListener('click', onPanelClick);
    $('notify-form').addEventListener('submit', sendNotice);
    $('btn-notify-enable').addEventListener('click', enableNotifications);
}

export function stopLobby() {
    clearInterval(lobbyTick);
}

/* The arrival tone's context, resumed on a user gesture. */
export function resumeTone() {
    if (toneCtx && toneCtx.state === 'suspended') toneCtx.resume().catch(() => {});
}

/* Waiting since (ms, local clock) per waiting person, from the lobby's
 * waited_s; the panel counts on locally between lobby messages. */
const waitingSince = new Map();
let lobbyTick = null;

function minutesWaited(since) {
    return Math.floor((Date.now() - since) / 60000);
}

function renderWaited() {
    for (const [id, since] of waitingSince) {
        const el = document.querySelector(`[data-testid="waited-${CSS.escape(id)}"]`);
        if (!el) continue;
        const m = minutesWaited(since);
        el.textContent = m < 1 ? t('panel.waited0') : t('panel.waited', { n: m });
    }
}

function checkBadge(p) {
    const span = document.createElement('span');
    span.className = 'badge badge-check';
    span.setAttribute('data-testid', `check-${p.participant}`);
    const c = p.check && typeof p.check === 'object' ? p.check : null;
    if (!c) {
        span.dataset.video = '';
        span.textContent = t('panel.checkNone');
        return span;
    }
    const video = ['good', 'weak', 'none'].includes(c.video) ? c.video : 'none';
    span.dataset.video = video;
    span.dataset.transport = String(c.transport || '');
    span.classList.add(`check-${video}`);
    span.textContent = t(`panel.check.${video}`);
    if (c.transport && c.transport !== 'none') {
        // The numbers too, for the clinician to judge (UDP or TCP, loss, RTT, rate).
        const details = document.createElement('span');
        details.className = 'badge-details';
        details.textContent = ` · ${t('panel.checkDetails', {
            transport: String(c.transport).toUpperCase(), loss: Number(c.loss_pct) || 0,
            rtt: Number(c.rtt_ms) || 0, kbps: Number(c.kbps) || 0,
        })}`;
        span.append(details);
    }
    return span;
}

export function renderLobby(msg) {
    const waiting = Array.isArray(msg.waiting) ? msg.waiting : [];
    const present = (Array.isArray(msg.present) ? msg.present : []).filter((p) => p.participant !== ctx.self());
    for (const p of [...waiting, ...present]) {
        ctx.people.set(p.participant, { ...(ctx.people.get(p.participant) || {}), role: p.role, name: p.name || '', connected: p.connected, rejoined: !!p.rejoined });
    }
    // Keep keyboard focus on the same control across re-renders.
    const active = document.activeElement;
    const focusKey = active && active.dataset && active.dataset.action ? `${active.dataset.action}:${active.dataset.participant}` : null;

    const now = Date.now();
    const seen = new Set();
    const wl = $('waiting-list');
    wl.textContent = '';
    for (const p of waiting) {
        seen.add(p.participant);
        if (Number.isFinite(p.waited_s)) waitingSince.set(p.participant, now - p.waited_s * 1000);
        else if (!waitingSince.has(p.participant)) waitingSince.set(p.participant, now);
        const li = document.createElement('li');
        li.className = 'person';
        li.dataset.participant = p.participant;
        li.setAttribute('data-testid', 'waiting-person');
        const label = document.createElement('span');
        label.className = 'person-name';
        label.textContent = ctx.displayName(p) + (p.connected ? '' : ` ${t('panel.interrupted')}`);
        const meta = document.createElement('span');
        meta.className = 'person-meta';
        if (p.rejoined) {
            const rj = document.createElement('span');
            rj.className = 'badge badge-rejoined';
            rj.setAttribute('data-testid', `rejoined-${p.participant}`);
            rj.textContent = t('panel.rejoined');
            meta.append(rj);
        }
        const waited = document.createElement('span');
        waited.className = 'badge';
        waited.setAttribute('data-testid', `waited-${p.participant}`);
        meta.append(waited, checkBadge(p));
        const actions = document.createElement('span');
        actions.className = 'person-actions';
        actions.append(actionButton('admit', p, t('panel.admit'), 'btn-primary'), actionButton('decline', p, t('panel.decline'), 'btn-secondary'));
        li.append(label, meta, actions);
        wl.append(li);
    }
    for (const id of Array.from(waitingSince.keys())) if (!seen.has(id)) waitingSince.delete(id);
    renderWaited();
    clearInterval(lobbyTick);
    lobbyTick = waiting.length ? setInterval(renderWaited, 15000) : null;
    $('waiting-empty').hidden = waiting.length > 0;
    $('waiting-count').textContent = String(waiting.length);
    // The People button carries the count, for when the panel is closed.
    $('people-waiting').textContent = String(waiting.length);
    $('people-waiting').hidden = waiting.length === 0;
    // Controls that go away with the last waiting person take keyboard focus
    // with them: give it to the panel's heading instead of the page's body.
    const lostFocus = waiting.length < 1 && active && (active === $('btn-admit-all') || $('notify-form').contains(active));
    $('btn-admit-all').hidden = waiting.length < 1;
    $('notify-form').hidden = waiting.length < 1;
    if (lostFocus) {
        $('panel-title').tabIndex = -1;
        $('panel-title').focus();
    }
    fillNotifyTargets(waiting);

    const pl = $('present-list');
    pl.textContent = '';
    for (const p of present) {
        const li = document.createElement('li');
        li.className = 'person';
        li.dataset.participant = p.participant;
        li.setAttribute('data-testid', 'present-person');
        const label = document.createElement('span');
        label.className = 'person-name';
        label.textContent = ctx.displayName(p) + (p.connected ? '' : ` ${t('panel.interrupted')}`);
        const actions = document.createElement('span');
        actions.className = 'person-actions';
        if (p.rejoined) {
            const rj = document.createElement('span');
            rj.className = 'badge badge-rejoined';
            rj.setAttribute('data-testid', `rejoined-${p.participant}`);
            rj.textContent = t('panel.rejoined');
            label.append(' ', rj);
        }
        actions.append(actionButton('remove', p, t('panel.remove'), 'btn-danger'));
        li.append(label, actions);
        pl.append(li);
        ctx.updateTile(p.participant);
    }
    $('present-empty').hidden = present.length > 0;

    if (focusKey) {
        const again = document.querySelector(`[data-action="${focusKey.split(':')[0]}"][data-participant="${CSS.escape(focusKey.split(':')[1])}"]`);
        if (again) again.focus();
    }
    const newcomers = waiting.filter((p) => !lastWaiting.has(p.participant));
    if (newcomers.length) {
        ctx.announce(tn('panel.arrived', newcomers.length, { names: newcomers.map((p) => ctx.displayName(p)).join(', ') }));
        arrivalAlert();
    }
    lastWaiting = new Set(waiting.map((p) => p.participant));
    document.title = waiting.length ? tn('page.titleWaiting', waiting.length) : t('page.title');
}
let lastWaiting = new Set();

function fillNotifyTargets(waiting) {
    const sel = $('notify-target');
    const keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const p of waiting) {
        const o = document.createElement('option');
        o.value = p.participant;
        o.textContent = ctx.displayName(p);
        sel.append(o);
    }
    sel.value = waiting.some((p) => p.participant === keep) ? keep : '';
}

/* A newcomer in the waiting room: a short tone (Web Audio, no file) and,
 * when this tab is in the background and the clinician allowed it, a
 * desktop notification without the person's name (it may show on a
 * locked screen). */
let toneCtx = null;
function arrivalAlert() {
    ctx.logEvent('arrival-sound');
    try {
        const Ctx = window.AudioContext || window.webkitAudioContext;
        if (Ctx) {
            if (!toneCtx) toneCtx = new Ctx();
            if (toneCtx.state === 'suspended') toneCtx.resume().catch(() => {});
            const at = toneCtx.currentTime;
            for (const [i, freq] of [[0, 660], [1, 880]]) {
                const osc = toneCtx.createOscillator();
                const gain = toneCtx.createGain();
                osc.type = 'sine';
                osc.frequency.value = freq;
                const t0 = at + i * 0.18;
                gain.gain.setValueAtTime(0.0001, t0);
                gain.gain.exponentialRampToValueAtTime(0.2, t0 + 0.02);
                gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.16);
                osc.connect(gain).connect(toneCtx.destination);
                osc.start(t0);
                osc.stop(t0 + 0.17);
            }
        }
    } catch (e) { /* no sound: the list and the announcement remain */ }
    if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
        try {
            const n = new Notification(t('panel.arrivalTitle'), { body: t('panel.arrivalBody'), tag: 'quietroom-arrival' });
            n.onclick = () => { window.focus(); n.close(); };
            ctx.logEvent('arrival-notification');
        } catch (e) { /* some browsers allow notifications only from a service worker */ }
    }
}

async function enableNotifications() {
    const st = $('notify-enable-status');
    if (!('Notification' in window)) { st.textContent = t('panel.notifyUnsupported'); return; }
    let perm = Notification.permission;
    if (perm === 'default') {
        try { perm = await Notification.requestPermission(); } catch (e) { perm = Notification.permission; }
    }
    st.textContent = perm === 'granted' ? t('panel.notifyOn') : t('panel.notifyBlocked');
    $('btn-notify-enable').setAttribute('aria-pressed', String(perm === 'granted'));
}

let notifyStatusTimer = null;
export function notifyStatus(text) {
    $('notify-status').textContent = text;
    clearTimeout(notifyStatusTimer);
    notifyStatusTimer = setTimeout(() => { $('notify-status').textContent = ''; }, 10000);
}

function sendNotice(ev) {
    ev.preventDefault();
    const input = $('notify-text');
    const text = input.value.trim();
    if (!text) { notifyStatus(t('panel.notifyEmpty')); input.focus(); return; }
    if (new TextEncoder().encode(text).length > 280) { notifyStatus(t('panel.notifyTooLong')); input.focus(); return; }
    if (!ctx.connected()) return;
    const msg = { type: 'notify', text };
    const target = $('notify-target').value;
    if (target) msg.participant = target;
    ctx.send(msg);
    input.value = '';
}

function actionButton(action, p, word, cls) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `btn btn-small ${cls}`;
    b.textContent = word;
    b.dataset.action = action;
    b.dataset.participant = p.participant;
    b.setAttribute('data-testid', `${action}-${p.participant}`);
    b.setAttribute('aria-label', t('panel.actionLabel', { action: word, who: ctx.displayName(p) }));
    return b;
}

function onPanelClick(ev) {
    const b = ev.target.closest('button[data-action]');
    if (!b || !ctx.connected()) return;
    const { action, participant } = b.dataset;
    if (!['admit', 'decline', 'remove'].includes(action)) return;
    const p = ctx.people.get(participant) || {};
    const go = () => {
        b.disabled = true;
        ctx.send({ type: action, participant });
        const words = { admit: 'panel.admitting', decline: 'panel.declining', remove: 'panel.removing' };
        ctx.announce(t(words[action], { who: ctx.displayName(p) }));
    };
    if (action === 'remove') {
        ctx.confirmAction({
            title: t('confirm.removeTitle', { who: ctx.displayName(p) }),
            text: t('confirm.removeText'),
            ok: t('confirm.removeOk'),
            danger: true,
            returnFocus: b,
            action: go,
        });
    } else {
        go();
    }
}
