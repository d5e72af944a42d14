/* Human sentences for every error code and reason in docs/protocol.md. The
 * codes themselves are shown small underneath, for the clinic's help desk. */

const ASK_NEW = 'Please ask your clinic for a new link.';

export const ERROR_TEXT = {
    // Authentication (the connection closes with 4401)
    auth_required: 'The visit page could not identify you. ' + ASK_NEW,
    token_too_large: 'This visit link is not valid. ' + ASK_NEW,
    token_malformed: 'This visit link is incomplete or damaged. Please open it again from your clinic’s message or portal, or ask for a new one.',
    token_alg_none: 'This visit link is not valid. ' + ASK_NEW,
    token_alg_hmac: 'This visit link is not valid. ' + ASK_NEW,
    token_alg_unsupported: 'This visit link is not valid. ' + ASK_NEW,
    token_unknown_kid: 'This visit link was not issued by a system this service knows. ' + ASK_NEW,
    token_alg_mismatch: 'This visit link is not valid. ' + ASK_NEW,
    token_bad_signature: 'This visit link is not valid or was changed. ' + ASK_NEW,
    token_wrong_issuer: 'This visit link belongs to a different clinic system. ' + ASK_NEW,
    token_wrong_audience: 'This visit link is meant for a different video service. ' + ASK_NEW,
    token_expired: 'This link has expired. Please ask your clinic for a new one.',
    token_not_yet_valid: 'This link is not active yet. Please try again closer to your appointment time.',
    token_issued_in_future: 'This link cannot be used yet: your clinic’s clock and ours disagree. Please try again in a minute or ask your clinic for a new link.',
    token_lifetime_too_long: 'This visit link is valid for longer than allowed. ' + ASK_NEW,
    token_missing_claim: 'This visit link is missing information. ' + ASK_NEW,
    token_bad_claim: 'This visit link contains information we cannot use. ' + ASK_NEW,
    token_role_not_allowed: 'This link does not allow joining a video visit. ' + ASK_NEW,
    token_replayed: 'This link was already used. Each link works once; if you were disconnected, please ask your clinic for a new link.',
    token_replay_cache_full: 'The video service is very busy right now. Please try again in a few minutes.',
    session_full: 'This visit already has as many participants as it allows.',
    server_busy: 'The video service is very busy right now. Please try again in a few minutes.',
    server_draining: 'This video server is restarting for maintenance. Please open your visit link again; it still works.',
    resume_invalid: 'We could not reconnect you to the visit. Please open a new link from your clinic to join again.',
    // Transient: the page tries again by itself (shown only if it gives up)
    state_unavailable: 'The video service could not record your place just now. Please try again in a moment; your link still works.',
    token_claim_unavailable: 'Your sign-in could not be recorded just now. Please open your visit link again in a moment; it still works.',
    // Message errors (the connection stays open)
    bad_json: 'Something went wrong talking to the server. Please reload the page if the problem continues.',
    unknown_type: 'Something went wrong talking to the server. Please reload the page if the problem continues.',
    missing_field: 'Something went wrong talking to the server.',
    bad_field: 'Something went wrong talking to the server.',
    already_authenticated: 'You are already connected.',
    not_allowed: 'Only the clinician can do that.',
    not_admitted: 'Please wait until the clinician admits you.',
    unknown_participant: 'That person is no longer in the visit.',
    not_waiting: 'That person is no longer in the waiting room.',
    unknown_peer: 'That person is no longer connected.',
    unexpected_answer: 'The video connection is being renegotiated.',
    no_relay_available: 'No video server is available right now. Video starts by itself as soon as one is; there is no need to reload.',
    sdp_too_large: 'Your browser’s video setup could not be used. Please try a current version of Chrome, Edge, Firefox or Safari.',
    sdp_malformed: 'Your browser’s video setup could not be used. Please try a current version of Chrome, Edge, Firefox or Safari.',
    sdp_no_media: 'Your browser offered no audio or video.',
    sdp_no_fingerprint: 'Your browser’s video setup is not encrypted and was refused.',
    sdp_no_bundle: 'Your browser’s video setup could not be used. Please try a current version of Chrome, Edge, Firefox or Safari.',
    sdp_no_rtcp_mux: 'Your browser’s video setup could not be used. Please try a current version of Chrome, Edge, Firefox or Safari.',
    sdp_bad_transport: 'Your browser’s video setup could not be used. Please try a current version of Chrome, Edge, Firefox or Safari.',
    sdp_out_of_space: 'Your browser’s video setup could not be used.',
    sdp_bad_params: 'Your browser’s video setup could not be used.',
    message_too_large: 'Something went wrong talking to the server.',
    rate_limited: 'Too many actions at once; please wait a moment.',
    internal: 'The server could not complete that request. Please try again.',
};

/* What the connection banner says while the page reconnects by itself. */
export const STATUS_TEXT = {
    // The call's media still flows through the relay; only signaling is away.
    callContinues: 'Your call continues. Reconnecting to the visit service…',
    callContinuesAnnounce: 'Your call continues. The connection to the visit service was lost; reconnecting in the background.',
    // The restarted service did not take the page back yet; it keeps asking.
    callContinuesRefused: 'Your call continues. Still reconnecting to the visit service…',
    // Signaling is away and there is no call media to keep (waiting room, call not connected).
    reconnecting: 'Connection lost — reconnecting…',
    reconnectingAnnounce: 'Connection lost. Reconnecting…',
    // state_unavailable / token_claim_unavailable while joining.
    joinRetry: 'The visit service is busy. Trying again…',
    joinRetryAnnounce: 'The visit service could not take you in yet. Trying again automatically; please keep this page open.',
    reconnected: 'Reconnected.',
};

/* Codes after which the connection is closed and the visit cannot go on. */
export const FATAL_CODES = new Set([
    'auth_required', 'token_too_large', 'token_malformed', 'token_alg_none', 'token_alg_hmac',
    'token_alg_unsupported', 'token_unknown_kid', 'token_alg_mismatch', 'token_bad_signature',
    'token_wrong_issuer', 'token_wrong_audience', 'token_expired', 'token_not_yet_valid',
    'token_issued_in_future', 'token_lifetime_too_long', 'token_missing_claim', 'token_bad_claim',
    'token_role_not_allowed', 'token_replayed', 'token_replay_cache_full', 'session_full',
    'server_busy', 'server_draining', 'resume_invalid', 'message_too_large',
]);

/* Why someone is sent away: `declined`, `removed`, `ended` messages. */
export const REASON_TEXT = {
    declined_by_clinician: ['You were not admitted', 'The clinician did not admit you to this visit. If you think this is a mistake, please contact your clinic.'],
    removed_by_clinician: ['You were removed from the visit', 'The clinician removed you from the visit. If you think this is a mistake, please contact your clinic.'],
    waiting_timeout: ['The waiting time ran out', 'You waited longer than the waiting room allows. Please contact your clinic or open your link again if you received a new one.'],
    resume_grace_expired: ['You were disconnected', 'Your connection was lost for too long, so your place in the visit was released. Please ask your clinic for a new link.'],
    token_expired: ['Your access has ended', 'The time allowed by your visit link is over. Please ask your clinic for a new link if you need to continue.'],
    ended_by_clinician: ['The visit has ended', 'The clinician ended the session. Thank you.'],
    idle_timeout: ['The visit has ended', 'The visit ended because the clinician was away for too long.'],
    max_length: ['The visit has ended', 'The visit reached its maximum length.'],
    server_shutdown: ['The visit has ended', 'The video service is restarting. Please ask your clinic for a new link to continue.'],
    left: ['You left the visit', 'You left the visit.'],
    replaced: ['The visit continues in another window', 'This visit was opened in another window or tab, so this one was disconnected.'],
    connection_lost: ['You were disconnected', 'We could not reconnect to the visit. Please check your internet connection and ask your clinic for a new link.'],
    no_token: ['This page needs your visit link', 'Please open the link your clinic sent you, or ask your clinic for a new one.'],
    unsupported: ['This browser cannot join video visits', 'Please use a current version of Chrome, Edge, Firefox or Safari.'],
};

export const ROLE_TEXT = {
    clinician: 'Clinician',
    patient: 'Patient',
    interpreter: 'Interpreter',
    observer: 'Observer',
};

export function errorText(code, fallback) {
    return ERROR_TEXT[code] || fallback || 'Something went wrong. Please try again.';
}

export function reasonText(reason) {
    return REASON_TEXT[reason] || ['The visit has ended', 'You are no longer connected to the visit.'];
}

export function errorTitle(code) {
    if (code === 'token_expired') return 'This link has expired';
    if (code === 'token_replayed') return 'This link was already used';
    if (code === 'token_not_yet_valid' || code === 'token_issued_in_future') return 'This link is not active yet';
    if (code === 'session_full') return 'This visit is full';
    if (code === 'server_busy' || code === 'token_replay_cache_full') return 'The service is busy';
    if (code === 'server_draining') return 'The service is restarting';
    if (code === 'resume_invalid') return 'We could not reconnect you';
    if (code === 'state_unavailable' || code === 'token_claim_unavailable') return 'Please try again in a moment';
    if (code && code.startsWith('token_') || code === 'auth_required') return 'This link cannot be used';
    return 'Something went wrong';
}
