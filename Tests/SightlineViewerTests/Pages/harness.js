/**
 * Exposes the viewer's own modules, unchanged, to the tests' WebDriver scripts. The harness is
 * served under the same CSP as the viewer, so anything that works here works there.
 */

import * as audio from '/viewer/audio.js';
import * as bytes from '/viewer/bytes.js';
import * as decoder from '/viewer/decoder.js';
import * as keyexchange from '/viewer/keyexchange.js';
import * as metrics from '/viewer/metrics.js';
import * as protocol from '/viewer/protocol.js';
import * as sframe from '/viewer/sframe.js';

window.lab = Object.freeze({ audio, bytes, decoder, keyexchange, metrics, protocol, sframe });
