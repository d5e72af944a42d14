// Every error code and reason in docs/protocol.md has a human sentence in
// the web client (signaling/web/messages.js). No browser needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const { ERROR_TEXT, REASON_TEXT, FATAL_CODES } = await import(path.join(repo, 'signaling', 'web', 'messages.js'));
const doc = await readFile(path.join(repo, 'docs', 'protocol.md'), 'utf8');

function section(title) {
    const start = doc.indexOf(`## ${title}`);
    assert.ok(start >= 0, `docs/protocol.md has no section "${title}"`);
    const end = doc.indexOf('\n## ', start + 3);
    return doc.slice(start, end < 0 ? undefined : end);
}

test('every error code of docs/protocol.md §7 has a sentence', () => {
    const codes = new Set();
    for (const line of section('7. Error codes').split('\n')) {
        const m = /^\|\s*(`[a-z_0-9]+`(?:,\s*`[a-z_0-9]+`)*)\s*\|/.exec(line);
        if (m) for (const c of m[1].matchAll(/`([a-z_0-9]+)`/g)) codes.add(c[1]);
    }
    assert.ok(codes.size >= 40, `only ${codes.size} codes parsed from §7`);
    const missing = [...codes].filter((c) => !ERROR_TEXT[c]);
    assert.deepEqual(missing, []);
});

test('every authentication error closes the visit screen (fatal) but the transient ones, message errors do not', () => {
    const auth = section('7. Error codes').split('Messages (the connection stays open)')[0];
    // §7 names the two the page retries (the store could not record the sign-in or the seat).
    const transient = ['state_unavailable', 'token_claim_unavailable'];
    for (const c of transient) {
        assert.ok(new RegExp('`' + c + '`[^\n]*[Tt]ransient|retr').test(auth), `${c} is documented as transient`);
        assert.ok(!FATAL_CODES.has(c), `${c} should not be fatal: the page retries it`);
    }
    for (const c of auth.matchAll(/^\|\s*`([a-z_0-9]+)`/gm)) {
        if (!transient.includes(c[1])) assert.ok(FATAL_CODES.has(c[1]), `${c[1]} should be fatal`);
    }
    for (const c of ['not_allowed', 'unknown_peer', 'unexpected_answer', 'rate_limited', 'sdp_malformed']) {
        assert.ok(!FATAL_CODES.has(c), `${c} should not be fatal`);
    }
});

test('every removal and end reason of docs/protocol.md §4 has a title and a sentence', () => {
    const s4 = section('4. Messages from the server');
    const reasons = new Set();
    for (const line of s4.split('\n').filter((l) => /^\| `(declined|removed|ended)`/.test(l))) {
        for (const m of line.matchAll(/`([a-z_]+_[a-z_]+)`/g)) reasons.add(m[1]);
    }
    assert.ok(reasons.size >= 8, `only ${[...reasons]} parsed`);
    const missing = [...reasons].filter((r) => !REASON_TEXT[r] || REASON_TEXT[r].length !== 2);
    assert.deepEqual(missing, []);
});

test('every code and reason has its sentence in every language of the catalogue (i18n.js)', async () => {
    const { CATALOGUE, LANGS } = await import(path.join(repo, 'signaling', 'web', 'i18n.js'));
    const { ERROR_KEYS, REASON_KEYS } = await import(path.join(repo, 'signaling', 'web', 'messages.js'));
    const missing = [];
    for (const lang of LANGS) {
        for (const [code, key] of Object.entries(ERROR_KEYS)) if (!CATALOGUE[lang][key]) missing.push(`${lang} ${code} (${key})`);
        for (const [reason, keys] of Object.entries(REASON_KEYS)) {
            for (const key of keys) if (!CATALOGUE[lang][key]) missing.push(`${lang} ${reason} (${key})`);
        }
    }
    assert.deepEqual(missing, []);
    // The live views follow the page's language.
    const { setLang } = await import(path.join(repo, 'signaling', 'web', 'i18n.js'));
    setLang('es');
    try {
        assert.match(ERROR_TEXT.token_expired, /caducado/);
        assert.match(REASON_TEXT.replaced[1], /otra pestaña o ventana/);
    } finally {
        setLang('en');
    }
    assert.equal(REASON_TEXT.replaced[1], 'This visit was opened in another tab or window.');
});
