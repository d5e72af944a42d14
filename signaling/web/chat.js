/* The in-call chat panel. Messages go straight to the other browsers on
 * the data channel (app.js sends them); they exist only in this panel's DOM
 * and go when the page does. Nothing of them is logged or stored.
 *
 * A peer's text is never interpreted: it goes in with textContent, and only
 * http(s) addresses become links (new tab, no opener, no referrer). */
import { linkParts, newChatId, encodeChat, RateLimit, MAX_CHAT_CHARS } from './channel.js';

const $ = (id) => document.getElementById(id);
const MAX_SHOWN = 200;              // older messages leave the DOM
const PEER_RATE = [20, 10000];      // a peer's messages beyond this are dropped

const ANNOUNCE_GAP_MS = 5000;

let opts = null;
let unread = 0;
let lastAnnounced = 0;
const limits = new Map();           // participant id -> RateLimit

/* o: {send(encoded) -> number of peers it went to, nameOf(id), t(key, vars),
 *     announce(text), onToggle(open)} */
export function initChat(o) {
    opts = o;
    $('chat-input').maxLength = MAX_CHAT_CHARS;
    $('chat-form').addEventListener('submit', (ev) => { ev.preventDefault(); sendFromInput(); });
    $('chat-input').addEventListener('keydown', (ev) => {
        // Enter sends, Shift+Enter makes a new line (as in every chat).
        if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); sendFromInput(); }
    });
    $('btn-chat').addEventListener('click', () => setChatOpen($('chat-panel').hidden));
    $('btn-chat-close').addEventListener('click', () => { setChatOpen(false); $('btn-chat').focus(); });
    renderUnread();
}

export function chatOpen() {
    return !$('chat-panel').hidden;
}

export function setChatOpen(open) {
    $('chat-panel').hidden = !open;
    $('btn-chat').setAttribute('aria-expanded', String(open));
    if (open) {
        unread = 0;
        renderUnread();
        $('chat-input').focus();
        scrollToEnd();
    }
    if (opts && opts.onToggle) opts.onToggle(open);
}

function sendFromInput() {
    const input = $('chat-input');
    const text = input.value.replace(/\s+$/, '');
    if (!text.trim()) return;
    const encoded = encodeChat(newChatId(), text);
    if (!encoded) { status(opts.t('chat.tooLong')); return; }
    const sent = opts.send(encoded);
    if (!sent) { status(opts.t('chat.nobody')); return; }
    status('');
    addMessage('me', opts.t('chat.me'), text);
    input.value = '';
}

function status(text) {
    $('chat-status').textContent = text;
}

/* A valid chat message (channel.js checked it) from participant id. */
export function receiveChat(id, msg) {
    if (!limits.has(id)) limits.set(id, new RateLimit(...PEER_RATE));
    if (!limits.get(id).allow()) return false;
    const who = opts.nameOf(id);
    addMessage(id, who, msg.text);
    if (!chatOpen()) {
        unread++;
        renderUnread();
        // Said for the first unread message, and then at most every few
        // seconds: a busy chat must not drown "X left" or "connection lost".
        const now = Date.now();
        if (unread === 1 || now - lastAnnounced >= ANNOUNCE_GAP_MS) {
            lastAnnounced = now;
            opts.announce(opts.t('chat.newFrom', { who }));
        }
    }
    return true;
}

export function forgetPeer(id) {
    limits.delete(id);
}

function addMessage(from, author, text) {
    const log = $('chat-list');
    const li = document.createElement('li');
    li.className = 'chat-message';
    li.dataset.from = from;
    li.setAttribute('data-testid', 'chat-message');
    const a = document.createElement('span');
    a.className = 'chat-author';
    a.setAttribute('data-testid', 'chat-author');
    a.textContent = author;
    const p = document.createElement('p');
    p.className = 'chat-text';
    p.setAttribute('data-testid', 'chat-text');
    for (const part of linkParts(text)) p.append(part.href ? linkTo(part) : document.createTextNode(part.text));
    li.append(a, p);
    log.append(li);
    while (log.children.length > MAX_SHOWN) log.firstElementChild.remove();
    $('chat-empty').hidden = true;
    scrollToEnd();
}

function linkTo(part) {
    const link = document.createElement('a');
    link.href = part.href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.textContent = part.text;
    return link;
}

function scrollToEnd() {
    const log = $('chat-log');
    log.scrollTop = log.scrollHeight;
}

function renderUnread() {
    const b = $('chat-unread');
    b.textContent = String(unread);
    b.hidden = unread === 0;
    // Read out as "Chat 3 unread", not "Chat 3".
    $('chat-unread-word').hidden = unread === 0;
    $('btn-chat').dataset.unread = String(unread);
}

/* The call is over for this page: every message goes. */
export function clearChat() {
    $('chat-list').textContent = '';
    $('chat-input').value = '';     // an unsent draft goes with the call too
    status('');
    $('chat-empty').hidden = false;
    unread = 0;
    limits.clear();
    renderUnread();
    $('chat-panel').hidden = true;
}
