/*! crossdock.js: Crossdock's first-party tracking snippet, served by the collector at
 * /crossdock.js (docs/sources.md). Apache-2.0. No dependencies.
 *
 *   <script src="https://collect.example.com/crossdock.js"></script>
 *   <script>
 *     crossdock.init({writeKey: "WRITE_KEY"});
 *     crossdock.page();
 *   </script>
 *
 * - Each call becomes a Segment-spec message with the page context, the visitor's anonymous
 *   id (a first-party cookie, copied to localStorage), their userId once identified, a
 *   sessionId and the consent state (`context.consent.categoryPreferences`).
 * - A session ends when the visitor's last message is more than `sessionTimeout` old (45
 *   minutes, the collector's `profiles.session_timeout`): the next message starts a new one.
 * - Messages wait in a queue in localStorage until the collector accepts them, so a page that
 *   is closed or a collector that is down loses none: POST {url}/v1/batch as text/plain (no
 *   CORS preflight), retried with exponential backoff (Retry-After honoured) on a network
 *   error, 408, 429 or 5xx; dropped with a console warning on any other refusal. When the
 *   page is hidden the queue also goes out with navigator.sendBeacon; it stays queued, since
 *   a beacon's outcome is never known, and the repeat the next page sends is dropped by the
 *   collector's messageId dedup.
 */
(function (window, document) {
  'use strict';

  var VERSION = '1.0.0';
  var PREFIX = 'crossdock.';
  var ANONYMOUS_COOKIE = 'crossdock_anonymous_id';
  var MINUTE = 60 * 1000;
  var BEACON_BYTES = 60 * 1024;  // browsers refuse beacons past 64 KB in flight
  var script = document.currentScript;

  var options = null;
  var memory = {};          // storage when localStorage is unavailable (private modes)
  var timer = null;
  var sending = false;
  var failures = 0;
  var batchSize = 0;        // flushAt, halved while the collector finds a batch too large

  function load(name) {
    try {
      var text = window.localStorage.getItem(PREFIX + name);
      return text === null ? null : JSON.parse(text);
    } catch (e) {
      return name in memory ? memory[name] : null;
    }
  }

  function save(name, value) {
    memory[name] = value;
    try {
      if (value === null) window.localStorage.removeItem(PREFIX + name);
      else window.localStorage.setItem(PREFIX + name, JSON.stringify(value));
    } catch (e) { /* memory holds it for this page */ }
  }

  function readCookie(name) {
    var found = document.cookie.split('; ').filter(function (pair) {
      return pair.indexOf(name + '=') === 0;
    })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  }

  function writeCookie(name, value) {
    var parts = [name + '=' + encodeURIComponent(value || ''), 'path=/', 'SameSite=Lax',
                 'max-age=' + (value ? 365 * 24 * 3600 : 0)];
    if (options.cookieDomain) parts.push('domain=' + options.cookieDomain);
    if (window.location.protocol === 'https:') parts.push('Secure');
    document.cookie = parts.join('; ');
  }

  function uuid() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join('');
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20),
            hex.slice(20)].join('-');
  }

  function anonymousId() {
    var id = readCookie(ANONYMOUS_COOKIE) || load('anonymousId');
    if (!id) id = uuid();
    writeCookie(ANONYMOUS_COOKIE, id);
    save('anonymousId', id);
    return id;
  }

  // The session of a message sent at `now`: the current one, or a new one when the last
  // message is more than sessionTimeout old.
  function sessionId(now) {
    var session = load('session');
    if (!session || typeof session.last !== 'number' ||
        now - session.last > options.sessionTimeout) {
      session = {id: uuid(), started: now};
    }
    session.last = now;
    save('session', session);
    return session.id;
  }

  function context() {
    var location = window.location;
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = null; }
    return {
      page: {path: location.pathname, referrer: document.referrer, search: location.search,
             title: document.title, url: location.href},
      userAgent: navigator.userAgent,
      locale: navigator.language,
      timezone: zone,
      library: {name: 'crossdock.js', version: VERSION},
      consent: {categoryPreferences: load('consent') || {}}
    };
  }

  function initialized() {
    if (options === null) throw new Error('crossdock.js: call crossdock.init({writeKey: ...}) first');
  }

  function send(type, fields) {
    initialized();
    var now = Date.now();
    var message = {type: type, messageId: uuid(), anonymousId: anonymousId(),
                   sessionId: sessionId(now), timestamp: new Date(now).toISOString(),
                   context: context()};
    var userId = load('userId');
    if (userId) message.userId = userId;
    Object.keys(fields).forEach(function (name) {
      if (fields[name] !== undefined) message[name] = fields[name];
    });
    var queue = load('queue') || [];
    queue.push(message);
    if (queue.length > options.maxQueue) {
      console.warn('crossdock.js: more than ' + options.maxQueue + ' messages wait for the ' +
                   'collector; the oldest is dropped');
      queue = queue.slice(queue.length - options.maxQueue);
    }
    save('queue', queue);
    schedule(0);
    return message.messageId;
  }

  function body(batch) {
    return JSON.stringify({writeKey: options.writeKey, batch: batch,
                           sentAt: new Date().toISOString()});
  }

  function schedule(delay) {
    if (timer !== null || sending) return;
    timer = setTimeout(function () { timer = null; flush(); }, delay);
  }

  // Another tab may have changed the queue meanwhile: take out only what was sent.
  function forget(batch) {
    var sent = {};
    batch.forEach(function (message) { sent[message.messageId] = true; });
    save('queue', (load('queue') || []).filter(function (message) {
      return !sent[message.messageId];
    }));
  }

  function retryLater(response) {
    failures += 1;
    var delay = Math.min(options.retryMax, options.retryBase * Math.pow(2, failures - 1));
    delay = delay / 2 + Math.random() * delay / 2;
    var after = response && Number(response.headers.get('Retry-After'));
    if (after > 0) delay = Math.min(options.retryMax, after * 1000);
    schedule(delay);
  }

  function flush() {
    var batch = (load('queue') || []).slice(0, batchSize);
    if (sending || batch.length === 0) return;
    sending = true;
    window.fetch(options.url + '/v1/batch', {
      method: 'POST', body: body(batch), credentials: 'omit',
      // text/plain keeps this a simple request: no preflight before each batch
      headers: {'Content-Type': 'text/plain'}
    }).then(function (response) {
      sending = false;
      var status = response.status;
      if (status === 408 || status === 429 || status >= 500) return retryLater(response);
      failures = 0;
      if (status === 413 && batch.length > 1) {  // too large together, not each
        batchSize = Math.ceil(batch.length / 2);
        return schedule(0);
      }
      batchSize = options.flushAt;
      // A refusal will not change on a retry: say why, and drop what was refused.
      if (!response.ok) {
        response.text().then(function (text) {
          console.warn('crossdock.js: the collector refused ' + batch.length +
                       ' message(s), dropped: ' + status + ' ' + text);
        });
      } else {
        response.json().then(function (answer) {
          var errors = (answer.response || {}).errors || [];
          if (errors.length) {
            console.warn('crossdock.js: the collector refused ' + errors.length +
                         ' message(s), dropped: ' + JSON.stringify(errors));
          }
        }, function () { /* an answer without a body says nothing more */ });
      }
      forget(batch);
      schedule(0);
    }, function () {
      sending = false;
      retryLater(null);
    });
  }

  // The queue in beacons of at most BEACON_BYTES each, until the browser takes no more.
  function beacon() {
    var queue = load('queue') || [];
    if (!options || queue.length === 0 || !navigator.sendBeacon) return;
    var batch = [];
    var size = 0;
    for (var i = 0; i <= queue.length; i++) {
      var bytes = i < queue.length ? new Blob([JSON.stringify(queue[i])]).size + 1 : 0;
      if (batch.length && (i === queue.length || size + bytes > BEACON_BYTES)) {
        var blob = new Blob([body(batch)], {type: 'text/plain'});
        if (!navigator.sendBeacon(options.url + '/v1/batch', blob)) return;
        batch = [];
        size = 0;
      }
      if (i < queue.length) {
        batch.push(queue[i]);
        size += bytes;
      }
    }
  }

  function scriptOrigin() {
    return script && script.src ? new URL(script.src, window.location.href).origin : null;
  }

  var crossdock = {
    VERSION: VERSION,

    // options: writeKey (required), url (the collector; default: where this script came
    // from), sessionTimeout (ms, default 45 minutes), cookieDomain, flushAt (messages a
    // request, 20), maxQueue (1000), retryBase (ms, 1000), retryMax (ms, 60000)
    init: function (given) {
      given = given || {};
      if (typeof given.writeKey !== 'string' || !given.writeKey) {
        throw new Error('crossdock.js: init needs writeKey, a write key of the collector');
      }
      var next = {url: scriptOrigin(), sessionTimeout: 45 * MINUTE, cookieDomain: null,
                  flushAt: 20, maxQueue: 1000, retryBase: 1000, retryMax: MINUTE};
      Object.keys(given).forEach(function (name) { next[name] = given[name]; });
      if (!next.url) throw new Error('crossdock.js: init needs url, the collector\'s URL');
      if (!(next.sessionTimeout > 0)) {
        throw new Error('crossdock.js: sessionTimeout must be a positive number of ms');
      }
      next.url = String(next.url).replace(/\/+$/, '');
      options = next;
      batchSize = next.flushAt;
      schedule(0);  // what an earlier page left queued
      return crossdock;
    },

    track: function (event, properties) {
      return send('track', {event: event, properties: properties || {}});
    },

    page: function (name, properties) {
      return send('page', {name: name, properties: properties || {}});
    },

    identify: function (userId, traits) {
      if (userId !== undefined && userId !== null) save('userId', String(userId));
      return send('identify', {traits: traits || {}});
    },

    group: function (groupId, traits) {
      return send('group', {groupId: groupId, traits: traits || {}});
    },

    // The visitor known as `previousId` (by default who they are now) is now `userId`.
    alias: function (userId, previousId) {
      var previous = previousId || load('userId') || anonymousId();
      save('userId', String(userId));
      return send('alias', {previousId: previous});
    },

    // Someone else uses this browser now: a new anonymous id and session, no userId.
    reset: function () {
      save('userId', null);
      save('anonymousId', null);
      save('session', null);
      if (options) writeCookie(ANONYMOUS_COOKIE, null);
    },

    // The visitor's consent, {purpose: true|false}, sent with every message from now on.
    consent: function (preferences) {
      save('consent', preferences || {});
    },

    // Who the visitor is to the collector; the anonymous id is made on the first call.
    user: function () {
      initialized();
      var session = load('session');
      return {anonymousId: anonymousId(), userId: load('userId'),
              sessionId: session ? session.id : null};
    }
  };

  // Back online: try now rather than when the backoff would have.
  window.addEventListener('online', function () {
    if (!options) return;
    clearTimeout(timer);
    timer = null;
    schedule(0);
  });
  window.addEventListener('pagehide', beacon);
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'hidden') beacon();
  });

  window.crossdock = crossdock;
})(window, document);
