/* Screen share: the screen track takes the place of the camera on every
 * link's video sender (replaceTrack, no renegotiation where a video sender
 * exists), and the camera (or nothing, if it was off) comes back when the
 * sharing stops, by the button or by the browser's own "Stop sharing". */

let screenTrack = null;
let picking = false;
let hooks = null;

/* h: {putVideo(track|null) -> Promise (on every link), cameraTrack() ->
 *     track|null, onChange(sharing, track)} */
export function initShare(h) {
    hooks = h;
}

export function canShare() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

export function sharing() {
    return !!screenTrack;
}

export function shareTrack() {
    return screenTrack;
}

/* Asks the browser for a screen, window or tab. Returns {ok}, and with
 * ok false the error's name (NotAllowedError: the person cancelled). */
export async function startShare() {
    // A second click while the picker is open must not start a second capture.
    if (screenTrack || picking || !canShare()) return { ok: !!screenTrack };
    let stream;
    picking = true;
    try {
        stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
        return { ok: false, error: e && e.name };
    } finally {
        picking = false;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return { ok: false, error: 'NotFoundError' };
    // Text and worksheets: sharp rather than smooth.
    try { track.contentHint = 'detail'; } catch (e) { /* older browsers */ }
    track.addEventListener('ended', () => { if (screenTrack === track) stopShare(); });
    screenTrack = track;
    // The others learn at once, as when it stops: their layout makes room
    // while every sender swaps its track (a busy page takes seconds for it).
    hooks.onChange(true, track);
    await hooks.putVideo(track);
    // Stopped while the senders swapped (the browser's own Stop): the
    // camera goes back after this late swap, not before it.
    if (screenTrack !== track) await hooks.putVideo(hooks.cameraTrack());
    return { ok: true };
}

export async function stopShare() {
    const track = screenTrack;
    if (!track) return;
    screenTrack = null;
    track.stop();
    // The others learn at once (their layout goes back to the grid); the
    // camera follows as soon as every sender has it.
    hooks.onChange(false, null);
    await hooks.putVideo(hooks.cameraTrack());
}
