/**
 * The page around the video: draws frames to the canvas, and shows the call's state in the
 * status bar. Text only changes when the state does, and the bar is refreshed at most once
 * per animation frame, so a 30 fps stream does not rebuild the DOM 30 times a second.
 */

import { frameSize } from './decoder.js';

const connectionText = {
    idle: 'Starting…',
    connecting: 'Connecting to the relay…',
    joining: 'Joining the call…',
    joined: 'Connected',
    reconnecting: 'Connection lost — reconnecting…',
    failed: 'Not connected',
    stopped: 'Closed',
};

const stepText = { full: 'Full video', low: 'Low quality', stills: 'Stills only', 'audio-only': 'Audio only' };

/** What the big area says when there is no picture to show, by call state. */
const overlayText = {
    connecting: 'Connecting to the relay…',
    reconnecting: 'Connection lost. Reconnecting…',
    'waiting-for-device': 'Waiting for the device to come online…',
    exchanging: 'Agreeing keys with the device…',
    verified: 'Encrypted and verified. Waiting for video…',
    'not-verified': 'This connection could not be verified, so no video will be shown. Ask the technician to send the invite link again.',
    failed: 'Not connected.',
    stopped: 'Viewer closed.',
};

function formatBitrate(kbps) {
    return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${kbps} kbit/s`;
}

/** Sets text only when it changed, so selection and screen readers are not disturbed. */
function setText(element, text) {
    if (element && element.textContent !== text) element.textContent = text;
}

function setTone(element, tone) {
    if (element && element.dataset.tone !== tone) element.dataset.tone = tone;
}

export class ViewerUI {
    #elements;
    #context;
    #pending = false;
    #session;
    #stillUrl = null;
    #hasPicture = false;
    /** The snapshot whose panel the expert closed; a new request opens it again. */
    #dismissedSnapshot = undefined;
    #stillShown = false;

    constructor(document, session) {
        const $ = (id) => document.getElementById(id);
        this.#elements = {
            canvas: $('video'),
            overlay: $('overlay'),
            overlayText: $('overlay-text'),
            session: $('session-id'),
            connection: $('connection'),
            connectionText: $('connection-text'),
            encryption: $('encryption'),
            encryptionText: $('encryption-text'),
            fingerprint: $('fingerprint'),
            latency: $('latency'),
            fps: $('fps'),
            bitrate: $('bitrate'),
            drops: $('drops'),
            step: $('step'),
            caseReference: $('case-reference'),
            message: $('message'),
            snapshotButton: $('snapshot-button'),
            snapshotStatus: $('snapshot-status'),
            snapshotPanel: $('snapshot-panel'),
            snapshotCanvas: $('snapshot-canvas'),
            snapshotCaption: $('snapshot-caption'),
            snapshotFooter: $('snapshot-footer'),
            snapshotSave: $('snapshot-save'),
            snapshotClose: $('snapshot-close'),
            audio: $('audio'),
            microphoneButton: $('microphone-button'),
        };
        this.#context = this.#elements.canvas.getContext('2d', { alpha: false, desynchronized: true });
        this.#session = session;
        this.#elements.snapshotButton.addEventListener('click', () => session.requestSnapshot());
        // A click is also the gesture browsers want before they play the technician's audio.
        this.#elements.microphoneButton.addEventListener('click', () => {
            if (session.stats.microphone) session.stopMicrophone();
            else session.startMicrophone().catch(() => {}); // the status bar shows why
        });
        document.addEventListener('click', () => session.enableSound(), { once: true });
        this.#elements.snapshotClose.addEventListener('click', () => {
            this.#dismissedSnapshot = session.stats.snapshot?.id ?? null;
            this.#elements.snapshotPanel.hidden = true;
        });
        session.addEventListener('change', () => this.#schedule());
        session.addEventListener('frame', (event) => {
            event.preventDefault();
            this.#draw(event.detail.frame);
        });
        session.addEventListener('still', (event) => {
            event.preventDefault();
            this.#showStill(event.detail);
        });
        this.#schedule();
    }

    /** Draws immediately (lowest latency), resizing the canvas to the frame's own size. */
    #draw(frame) {
        try {
            const { width, height } = frameSize(frame);
            const canvas = this.#elements.canvas;
            if (canvas.width !== width || canvas.height !== height) {
                canvas.width = width;
                canvas.height = height;
            }
            this.#context.drawImage(frame, 0, 0, width, height);
            if (!this.#hasPicture) {
                this.#hasPicture = true;
                this.#schedule();
            }
        } finally {
            frame.close();
        }
    }

    #showStill({ image, jpeg, width, height, snapshot }) {
        const e = this.#elements;
        try {
            const size = frameSize(image);
            e.snapshotCanvas.width = size.width;
            e.snapshotCanvas.height = size.height;
            e.snapshotCanvas.getContext('2d').drawImage(image, 0, 0);
        } finally {
            image.close();
        }
        const name = snapshot?.evidence ?? `snapshot-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        setText(e.snapshotCaption, `${name} · ${width}×${height}`);
        if (this.#stillUrl) URL.revokeObjectURL(this.#stillUrl);
        this.#stillUrl = URL.createObjectURL(new Blob([jpeg], { type: 'image/jpeg' }));
        e.snapshotSave.href = this.#stillUrl;
        e.snapshotSave.download = name.endsWith('.jpg') ? name : `${name}.jpg`;
        e.snapshotCanvas.hidden = false;
        e.snapshotFooter.hidden = false;
        this.#stillShown = true;
        this.#dismissedSnapshot = undefined; // a new picture is worth showing
        this.#schedule();
    }

    #schedule() {
        if (this.#pending) return;
        this.#pending = true;
        const run = () => {
            this.#pending = false;
            this.render(this.#session.stats);
        };
        // Hidden tabs get no animation frames; the bar must still be right when shown again.
        if (document.visibilityState === 'visible') requestAnimationFrame(run);
        else setTimeout(run, 250);
    }

    render(stats) {
        const e = this.#elements;
        setText(e.session, stats.session);

        const connection = stats.connection === 'joined' && !stats.deviceOnline ? 'Connected · device offline' : connectionText[stats.connection];
        setText(e.connectionText, connection ?? stats.connection);
        const connectionTone = { joined: stats.deviceOnline ? 'good' : 'warn', failed: 'bad', reconnecting: 'warn' }[stats.connection] ?? 'neutral';
        setTone(e.connection, connectionTone);

        const encryption = {
            none: ['Not yet encrypted', 'neutral'],
            exchanging: ['Verifying encryption…', 'neutral'],
            verified: ['End-to-end encrypted · verified', 'good'],
            'not-verified': ['Not verified — do not trust this connection', 'bad'],
        }[stats.encryption];
        setText(e.encryptionText, encryption[0]);
        setTone(e.encryption, encryption[1]);
        setText(e.fingerprint, stats.fingerprint ?? '—');
        e.fingerprint.title = stats.fingerprint ? 'Device identity fingerprint: compare it with the one your organisation registered' : '';

        const live = stats.state === 'live';
        setText(e.latency, live && stats.latencyMsP50 !== null ? `${Math.round(stats.latencyMsP50)} ms` : '—');
        setText(e.fps, live ? `${stats.fps}` : '—');
        setText(e.bitrate, stats.bitrateKbps > 0 ? formatBitrate(stats.bitrateKbps) : '—');
        setText(e.drops, `${stats.framesLost} / ${stats.decryptFailures}`);
        setTone(e.drops, stats.decryptFailures > 0 ? 'bad' : stats.framesLost > 0 ? 'warn' : 'neutral');
        setText(e.step, stats.step ? stepText[stats.step] ?? stats.step : '—');
        setTone(e.step, { full: 'good', low: 'warn', stills: 'warn', 'audio-only': 'bad' }[stats.step] ?? 'neutral');
        setText(e.caseReference, stats.caseReference ?? '—');

        // The technician's microphone: muted by privacy mode, live, or not heard yet.
        const audioText = stats.audioMuted ? 'Technician muted' : stats.audioDecoded > 0 ? (stats.audible ? 'Live' : 'Click to hear') : '—';
        setText(e.audio, audioText);
        setTone(e.audio, stats.audioMuted ? 'warn' : stats.audioDecoded > 0 ? 'good' : 'neutral');
        e.microphoneButton.disabled = !stats.verified || stats.connection !== 'joined';
        setText(e.microphoneButton, stats.microphone ? 'Mute me' : 'Talk');

        let overlay = null;
        if (stats.privacy) overlay = 'Privacy mode: the technician has paused video and audio.';
        else if (stats.verified && stats.step === 'stills') overlay = 'The network is too slow for video. Use Snapshot for full-resolution stills.';
        else if (stats.verified && stats.step === 'audio-only') overlay = 'The network is too slow for pictures: voice only. Snapshots are saved on the device and arrive when the link recovers.';
        else if (!(live && this.#hasPicture)) overlay = overlayText[stats.state] ?? 'Waiting for the first picture…';
        e.overlay.hidden = overlay === null;
        setTone(e.overlay, stats.state === 'not-verified' || stats.state === 'failed' ? 'bad' : 'neutral');
        if (overlay !== null) setText(e.overlayText, overlay);
        e.canvas.classList.toggle('stale', !live);

        const message = stats.error ?? (stats.microphoneError ? `Microphone: ${stats.microphoneError}` : '');
        setText(e.message, message);
        e.message.hidden = !message;

        const snapshot = stats.snapshot;
        const pending = snapshot?.state === 'requested' || snapshot?.state === 'taken';
        e.snapshotButton.disabled = !stats.verified || stats.connection !== 'joined' || pending;
        setText(e.snapshotButton, pending ? 'Requesting…' : 'Snapshot');
        const snapshotText = !snapshot
            ? ''
            : {
                  requested: 'Asking the device for a full-resolution still…',
                  taken: `Saved on the device as ${snapshot.evidence}. Receiving…`,
                  received: 'Saved on the device.',
                  failed: `Snapshot failed: ${snapshot.reason}`,
              }[snapshot.state];
        setText(e.snapshotStatus, snapshotText);
        setTone(e.snapshotStatus, snapshot?.state === 'failed' ? 'bad' : 'neutral');
        // A pending or failed request shows the panel with its status; a picture keeps it open.
        const wanted = (snapshot !== null || this.#stillShown) && this.#dismissedSnapshot !== (snapshot?.id ?? null);
        if (snapshot && snapshot.state !== 'received' && snapshot.state !== 'failed') {
            e.snapshotCanvas.hidden = true;
            e.snapshotFooter.hidden = true;
        }
        e.snapshotPanel.hidden = !wanted;
    }
}
