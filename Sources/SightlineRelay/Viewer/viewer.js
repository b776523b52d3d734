/**
 * The viewer page's entry point: reads the session from `/v/SESSION` and the call secret from
 * the URL fragment (which the browser never sends to the relay), starts the call and the UI,
 * and exposes read-only stats on `window.sightlineViewer` for the test suite.
 */

import { parseSecret, supportsKeyExchange } from './keyexchange.js';
import { ViewerSession } from './session.js';
import { ViewerUI } from './ui.js';

/** The session id from `/v/SESSION`, or null when the path is not a viewer link. */
function sessionFromPath(pathname) {
    const match = /^\/v\/([^/]+)\/?$/.exec(pathname);
    if (!match) return null;
    try {
        return decodeURIComponent(match[1]);
    } catch {
        return null;
    }
}

/** `ws(s)://same-host/v1/viewer/SESSION`: the relay that served the page is the one to join. */
function relaySocketURL(location, session) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/v1/viewer/${encodeURIComponent(session)}`;
}

function showFatal(message) {
    const overlay = document.getElementById('overlay');
    const text = document.getElementById('overlay-text');
    overlay.hidden = false;
    overlay.dataset.tone = 'bad';
    text.textContent = message;
    document.getElementById('connection-text').textContent = 'Not connected';
    document.getElementById('connection').dataset.tone = 'bad';
}

async function main() {
    // The secret lives only in the fragment; an expert who pastes a corrected one expects the
    // page to use it, and a changed fragment does not reload a page by itself.
    window.addEventListener('hashchange', () => location.reload());
    const session = sessionFromPath(location.pathname);
    if (!session) {
        showFatal('This is not a call link. Open the invite link you were sent (…/v/SESSION#SECRET).');
        return;
    }
    document.getElementById('session-id').textContent = session;
    let secret;
    try {
        secret = parseSecret(location.hash);
    } catch (error) {
        showFatal(`${error.message}. Copy the whole invite link, including everything after “#”.`);
        return;
    }
    if (!(await supportsKeyExchange())) {
        showFatal('This browser lacks WebCrypto X25519/Ed25519, so the call cannot be verified. Use a current Chromium or Firefox.');
        return;
    }
    const call = new ViewerSession({ session, secret, url: relaySocketURL(location, session) });
    new ViewerUI(document, call);
    Object.defineProperty(window, 'sightlineViewer', {
        value: Object.freeze({
            /** A fresh JSON-safe snapshot of the counters on every read. */
            get stats() {
                return call.stats;
            },
            requestSnapshot: () => call.requestSnapshot(),
            startMicrophone: (options) => call.startMicrophone(options),
            stopMicrophone: () => call.stopMicrophone(),
            enableSound: () => call.enableSound(),
        }),
        enumerable: true,
    });
    await call.start();
}

main().catch((error) => {
    console.error('sightline viewer:', error);
    showFatal(`The viewer could not start: ${error.message}`);
});
