// The live operator page: polls /api/dashboard once a second and draws the
// last two minutes on canvases. No libraries, no inline script (the page's
// CSP allows only this file). The operator token, if the listener has one,
// comes from the URL fragment (#token=...), which the browser never sends.
const HISTORY = 120;
const POLL_MS = 1000;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const token = new URLSearchParams(location.hash.slice(1)).get('token');
const signalHistory = { ws: [], waiting: [], sessions: [] };
const relayHistory = new Map();   // name -> { bitsIn, bitsOut, pktIn, pktOut, tcpIn, tcpOut, drops: Map }

function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
}

function fmt(v, unit = '') {
    if (v === null || v === undefined) return '–';
    const abs = Math.abs(v);
    if (abs >= 1e9) return (v / 1e9).toFixed(1) + ' G' + unit;
    if (abs >= 1e6) return (v / 1e6).toFixed(1) + ' M' + unit;
    if (abs >= 1e3) return (v / 1e3).toFixed(1) + ' k' + unit;
    return (Number.isInteger(v) ? String(v) : v.toFixed(1)) + (unit ? ' ' + unit : '');
}

function frame(ctx, w, h, max) {
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = '#e3e6e8';
    ctx.lineWidth = 1;
    for (let i = 1; i < 4; i++) {
        const y = Math.round((h - 14) * i / 4) + 0.5;
        ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
    }
    ctx.fillStyle = '#5f6b73';
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillText(fmt(max), 4, 11);
}

// series: [{ values: [number|null], color, label }]
function lineChart(canvas, series) {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height, plotH = h - 16;
    let max = 1;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    max *= 1.1;
    frame(ctx, w, h, max);
    // Legend labels share the width, at most 110 px apart.
    const step = Math.min(110, (w - 60) / series.length);
    series.forEach((s, k) => {
        ctx.strokeStyle = s.color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        let pen = false;
        s.values.forEach((v, i) => {
            const x = w - (s.values.length - 1 - i) * (w / (HISTORY - 1));
            if (v === null) { pen = false; return; }
            const y = 2 + plotH - (v / max) * (plotH - 4);
            if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
            pen = true;
        });
        ctx.stroke();
        ctx.fillStyle = s.color;
        ctx.fillText(s.label, 60 + k * step, h - 3);
    });
}

function barChart(canvas, bars, max) {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height, plotH = h - 16;
    const top = max ?? Math.max(1, ...bars.map((b) => b.value)) * 1.1;
    frame(ctx, w, h, top);
    const bw = bars.length ? Math.min(60, (w - 20) / bars.length - 6) : 0;
    bars.forEach((b, i) => {
        const x = 10 + i * (bw + 6);
        const bh = Math.max(1, (b.value / top) * (plotH - 4));
        ctx.fillStyle = COLORS[i % COLORS.length];
        ctx.fillRect(x, 2 + plotH - bh, bw, bh);
        ctx.fillStyle = '#5f6b73';
        ctx.fillText(b.label, x, h - 3);
    });
}

function setText(root, sel, v) {
    const el = root.querySelector(sel);
    if (el) el.textContent = v;
}

function relayCard(name) {
    const id = 'relay-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
    let card = document.getElementById(id);
    if (!card) {
        card = document.getElementById('relay-template').content.firstElementChild.cloneNode(true);
        card.id = id;
        card.querySelector('.relay-name').textContent = 'Relay ' + name;
        document.getElementById('relays').appendChild(card);
    }
    return card;
}

function drawRelay(r) {
    let hist = relayHistory.get(r.name);
    if (!hist) {
        hist = { bitsIn: [], bitsOut: [], pktIn: [], pktOut: [], tcpIn: [], tcpOut: [], drops: new Map() };
        relayHistory.set(r.name, hist);
    }
    push(hist.bitsIn, r.bits_in_per_s); push(hist.bitsOut, r.bits_out_per_s);
    push(hist.pktIn, r.packets_in_per_s); push(hist.pktOut, r.packets_out_per_s);
    push(hist.tcpIn, r.tcp_packets_in_per_s); push(hist.tcpOut, r.tcp_packets_out_per_s);
    for (const [reason, v] of Object.entries(r.drops_per_s || {})) {
        if (!hist.drops.has(reason)) hist.drops.set(reason, []);
    }
    for (const [reason, arr] of hist.drops) push(arr, (r.drops_per_s || {})[reason] ?? null);

    const card = relayCard(r.name);
    const state = card.querySelector('.relay-state');
    state.textContent = !r.up ? 'down' : r.draining ? 'draining: no new sessions' : 'up';
    state.className = 'relay-state' + (!r.up ? ' down' : r.draining ? ' draining' : '');
    setText(card, '.r-sessions', fmt(r.sessions));
    setText(card, '.r-pps-in', fmt(r.packets_in_per_s));
    setText(card, '.r-pps-out', fmt(r.packets_out_per_s));
    setText(card, '.r-bps-in', fmt(r.bits_in_per_s, 'b'));
    setText(card, '.r-bps-out', fmt(r.bits_out_per_s, 'b'));
    setText(card, '.r-tcp-pps-in', fmt(r.tcp_packets_in_per_s));
    setText(card, '.r-tcp-conns', fmt(r.tcp_connections));
    lineChart(card.querySelector('.c-bits'), [
        { values: hist.bitsIn, color: COLORS[0], label: 'in' },
        { values: hist.bitsOut, color: COLORS[1], label: 'out' }]);
    lineChart(card.querySelector('.c-packets'), [
        { values: hist.pktIn, color: COLORS[0], label: 'in' },
        { values: hist.pktOut, color: COLORS[1], label: 'out' },
        { values: hist.tcpIn, color: COLORS[2], label: 'TCP in' },
        { values: hist.tcpOut, color: COLORS[3], label: 'TCP out' }]);
    // Only reasons that ever dropped something get a line.
    const drops = [...hist.drops].filter(([, a]) => a.some((v) => v > 0));
    lineChart(card.querySelector('.c-drops'), drops.map(([reason, a], i) =>
        ({ values: a, color: COLORS[(i + 2) % COLORS.length], label: reason })));
    barChart(card.querySelector('.c-workers'),
        (r.worker_busy || []).map((v, i) => ({ value: v, label: 'w' + i })), 1);
    // Cumulative counts per bound -> streams in each band.
    const le = r.loss?.le || [], cum = r.loss?.active_streams || [];
    barChart(card.querySelector('.c-loss'), cum.map((c, i) => ({
        value: c - (i ? cum[i - 1] : 0),
        label: i < le.length ? '≤' + (le[i] * 100).toFixed(1) + '%' : 'more',
    })));
}

function draw(doc) {
    const s = doc.signal;
    setText(document, '#ws-connections', fmt(s.ws_connections));
    setText(document, '#sessions', fmt(s.sessions));
    setText(document, '#waiting-room', fmt(s.waiting_room));
    setText(document, '#messages-rate', fmt(s.rates.messages));
    setText(document, '#ready', s.draining ? 'draining' : s.ready ? 'ready' : 'not ready');
    push(signalHistory.ws, s.ws_connections);
    push(signalHistory.waiting, s.waiting_room);
    push(signalHistory.sessions, s.sessions);
    lineChart(document.getElementById('chart-signal'), [
        { values: signalHistory.ws, color: COLORS[0], label: 'connections' },
        { values: signalHistory.sessions, color: COLORS[2], label: 'visits' },
        { values: signalHistory.waiting, color: COLORS[1], label: 'waiting' }]);
    for (const r of doc.relays) drawRelay(r);
}

async function poll() {
    const status = document.getElementById('status');
    try {
        const headers = token ? { Authorization: 'Bearer ' + token } : {};
        const resp = await fetch('/api/dashboard', { headers, cache: 'no-store' });
        if (!resp.ok) throw new Error(resp.status === 401 ? 'operator token required (#token=…)' : 'HTTP ' + resp.status);
        const doc = await resp.json();
        draw(doc);
        status.textContent = 'updated ' + new Date(doc.time_ms).toLocaleTimeString();
        status.className = '';
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    } catch (e) {
        status.textContent = 'no data: ' + e.message;
        status.className = 'error';
    }
}

poll();
setInterval(poll, POLL_MS);
