/* Quietroom: runs before anything else on the page (a classic, blocking
 * script in <head>). The EHR opens the page with the single-use token in the
 * URL fragment (#token=...). Take it out of the address bar and the session
 * history at once, so it cannot be bookmarked, synced, shared, shown on a
 * screen share or read back by anything that loads later. The token is kept
 * only in this closure and handed once to app.js. It is never logged. */
(function () {
    'use strict';
    var token = null;
    var hash = window.location.hash;
    if (hash && hash.length > 1) {
        try {
            var params = new URLSearchParams(hash.slice(1));
            token = params.get('token');
        } catch (e) {
            token = null;
        }
        try {
            window.history.replaceState(null, '', window.location.pathname + window.location.search);
        } catch (e) {
            window.location.hash = '';
        }
    }
    /* One read only: the first caller (app.js) gets the token, later reads get null. */
    Object.defineProperty(window, 'quietroomTakeToken', {
        configurable: true,
        enumerable: false,
        value: function () {
            var t = token;
            token = null;
            return t;
        }
    });
})();
