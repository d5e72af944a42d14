/* Human sentences for every error code and reason in docs/protocol.md, as
 * keys of the catalogue (i18n.js): the objects below read the sentence in the
 * page's current language each time. The codes themselves are shown small
 * underneath, for the clinic's help desk. */
import { t } from './i18n.js';

/* Error code -> catalogue key. */
export const ERROR_KEYS = Object.freeze({
    // Authentication (the connection closes with 4401, or 4403 for a seat)
    auth_required: 'err.authRequired',
    token_too_large: 'err.invalid',
    token_malformed: 'err.malformed',
    token_alg_none: 'err.invalid',
    token_alg_hmac: 'err.invalid',
    token_alg_unsupported: 'err.invalid',
    token_unknown_kid: 'err.unknownKid',
    token_alg_mismatch: 'err.invalid',
    token_bad_signature: 'err.badSignature',
    token_wrong_issuer: 'err.wrongIssuer',
    token_wrong_audience: 'err.wrongAudience',
    token_expired: 'err.expired',
    token_not_yet_valid: 'err.notYetValid',
    token_issued_in_future: 'err.issuedInFuture',
    token_lifetime_too_long: 'err.lifetime',
    token_missing_claim: 'err.missingClaim',
    token_bad_claim: 'err.badClaim',
    token_role_not_allowed: 'err.roleNotAllowed',
    token_replayed: 'err.replayed',
    token_replay_cache_full: 'err.busy',
    removed_by_clinician: 'err.removedSeat',
    declined_by_clinician: 'err.declinedSeat',
    session_full: 'err.full',
    server_busy: 'err.busy',
    server_draining: 'err.draining',
    resume_invalid: 'err.resumeInvalid',
    // Transient: the page tries again by itself (shown only if it gives up)
    state_unavailable: 'err.stateUnavailable',
    token_claim_unavailable: 'err.claimUnavailable',
    // Message errors (the connection stays open)
    bad_json: 'err.reload',
    unknown_type: 'err.reload',
    missing_field: 'err.talk',
    bad_field: 'err.talk',
    already_authenticated: 'err.alreadyAuth',
    not_allowed: 'err.notAllowed',
    not_admitted: 'err.notAdmitted',
    unknown_participant: 'err.unknownParticipant',
    not_waiting: 'err.notWaiting',
    unknown_peer: 'err.unknownPeer',
    unexpected_answer: 'err.unexpectedAnswer',
    no_relay_available: 'err.noRelay',
    check_limit: 'err.checkLimit',
    sdp_too_large: 'err.sdpTry',
    sdp_malformed: 'err.sdpTry',
    sdp_no_media: 'err.sdpNoMedia',
    sdp_no_fingerprint: 'err.sdpNoFingerprint',
    sdp_no_bundle: 'err.sdpTry',
    sdp_no_rtcp_mux: 'err.sdpTry',
    sdp_bad_transport: 'err.sdpTry',
    sdp_out_of_space: 'err.sdp',
    sdp_bad_params: 'err.sdp',
    message_too_large: 'err.talk',
    rate_limited: 'err.rateLimited',
    internal: 'err.internal',
});

/* Why someone is sent away (`declined`, `removed`, `ended`, and the page's
 * own reasons) -> [title key, text key]. */
export const REASON_KEYS = Object.freeze({
    declined_by_clinician: ['reason.declined.title', 'reason.declined.text'],
    removed_by_clinician: ['reason.removed.title', 'reason.removed.text'],
    waiting_timeout: ['reason.waitingTimeout.title', 'reason.waitingTimeout.text'],
    resume_grace_expired: ['reason.graceExpired.title', 'reason.graceExpired.text'],
    token_expired: ['reason.tokenExpired.title', 'reason.tokenExpired.text'],
    ended_by_clinician: ['reason.ended.title', 'reason.endedByClinician.text'],
    idle_timeout: ['reason.ended.title', 'reason.idle.text'],
    max_length: ['reason.ended.title', 'reason.maxLength.text'],
    server_shutdown: ['reason.ended.title', 'reason.shutdown.text'],
    left: ['reason.left.title', 'reason.left.text'],
    replaced: ['reason.replaced.title', 'reason.replaced.text'],
    connection_lost: ['reason.connectionLost.title', 'reason.connectionLost.text'],
    no_token: ['reason.noToken.title', 'reason.noToken.text'],
    unsupported: ['reason.unsupported.title', 'reason.unsupported.text'],
});

const ROLE_KEYS = { clinician: 'role.clinician', patient: 'role.patient', interpreter: 'role.interpreter', observer: 'role.observer' };

/* Live views of the catalogue in the current language (same shapes as
 * before: code -> sentence, reason -> [title, sentence], role -> word). */
function liveMap(keys, read) {
    const o = {};
    for (const k of Object.keys(keys)) Object.defineProperty(o, k, { enumerable: true, get: () => read(keys[k]) });
    return Object.freeze(o);
}
export const ERROR_TEXT = liveMap(ERROR_KEYS, (k) => t(k));
export const REASON_TEXT = liveMap(REASON_KEYS, ([a, b]) => [t(a), t(b)]);
export const ROLE_TEXT = liveMap(ROLE_KEYS, (k) => t(k));

const STATUS_KEYS = Object.fromEntries(['callContinues', 'callContinuesAnnounce', 'callContinuesRefused',
    'reconnecting', 'reconnectingAnnounce', 'joinRetry', 'joinRetryAnnounce', 'reconnected']
    .map((k) => [k, `status.${k}`]));
/* What the connection banner says while the page reconnects by itself. */
export const STATUS_TEXT = liveMap(STATUS_KEYS, (k) => t(k));

/* Codes after which the connection is closed and the visit cannot go on. */
export const FATAL_CODES = new Set([
    'auth_required', 'token_too_large', 'token_malformed', 'token_alg_none', 'token_alg_hmac',
    'token_alg_unsupported', 'token_unknown_kid', 'token_alg_mismatch', 'token_bad_signature',
    'token_wrong_issuer', 'token_wrong_audience', 'token_expired', 'token_not_yet_valid',
    'token_issued_in_future', 'token_lifetime_too_long', 'token_missing_claim', 'token_bad_claim',
    'token_role_not_allowed', 'token_replayed', 'token_replay_cache_full', 'session_full',
    'server_busy', 'server_draining', 'resume_invalid', 'message_too_large',
    'removed_by_clinician', 'declined_by_clinician',
]);

export function errorText(code, fallback) {
    return ERROR_KEYS[code] ? t(ERROR_KEYS[code]) : (fallback || t('err.generic'));
}

export function reasonText(reason) {
    const k = REASON_KEYS[reason];
    return k ? [t(k[0]), t(k[1])] : [t('ended.title'), t('reason.other.text')];
}

export function errorTitle(code) {
    if (code === 'token_expired') return t('errTitle.expired');
    if (code === 'token_replayed') return t('errTitle.replayed');
    if (code === 'token_not_yet_valid' || code === 'token_issued_in_future') return t('errTitle.notYet');
    if (code === 'removed_by_clinician') return t('errTitle.removed');
    if (code === 'declined_by_clinician') return t('errTitle.declined');
    if (code === 'session_full') return t('errTitle.full');
    if (code === 'server_busy' || code === 'token_replay_cache_full') return t('errTitle.busy');
    if (code === 'server_draining') return t('errTitle.draining');
    if (code === 'resume_invalid') return t('errTitle.resume');
    if (code === 'state_unavailable' || code === 'token_claim_unavailable') return t('errTitle.retry');
    if ((code && code.startsWith('token_')) || code === 'auth_required') return t('errTitle.link');
    return t('errTitle.generic');
}
