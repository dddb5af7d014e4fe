/*
 * switchboard.js — a dependency-free browser client for the Switchboard hub.
 *
 *   const sb = new Switchboard({ transport: "auto" });   // or "websocket" | "sse" | "poll"
 *   const off = sb.subscribe("chat", (data, meta) => console.log(meta.id, new Date(meta.ts), data));
 *   await sb.publish("chat", { text: "hello" });         // resolves to { id, epoch, ts }
 *   sb.on("state", (s) => ...);                           // "connecting" | "open" | "closed"
 *   sb.on("transport", (t) => ...);                       // the transport in use
 *   sb.on("reset", ({ channel, reason }) => ...);         // history could not reach back
 *   sb.on("retry", ({ attempt, delay, reason, unreachable }) => ...); // next try in `delay` ms
 *   sb.on("error", ({ code, message, status, channel, fatal }) => ...);
 *   sb.error;                                             // a fatal connection error, or null
 *   sb.channelError("chat");                              // why a channel cannot be followed, or null
 *   sb.cursor("chat");                                    // "EPOCH:ID" of the last message seen, or null
 *   sb.reconnect();                                       // try again now (also after a fatal error)
 *
 * States tell the truth about delivery, on every transport: "open" only while messages
 * can arrive (a WebSocket that is open; every EventSource OPEN, not CONNECTING after an
 * error; a long poll that last answered); "connecting" while the first connection or a
 * reconnect is under way (each failed try emits "retry" with the delay before the next);
 * "closed" after close(), after a fatal error, or (SSE, long polling) when every channel
 * has a channel error; a WebSocket stays open for the channels subscribed next.
 *
 * Errors. When a transport fails, the client asks REST (GET /api/channels/{channel}/
 * messages?limit=1) why, because browsers hide the status of a refused WebSocket or
 * EventSource. Answers that retrying cannot fix are fatal and emitted as "error" with
 * fatal: true, at connect time, before anything is sent:
 *   - unauthorized, origin_not_allowed, host_not_allowed: the connection's fault; no more
 *     reconnects, state "closed", `sb.error` holds it until reconnect() (a new token in the
 *     page's URL needs a reload);
 *   - invalid_channel, forbidden: that channel's fault (with `channel`); the others go on,
 *     `sb.channelError(name)` holds it. Over /ws these come as the subscribe's error frame.
 * Other errors ("error" events without fatal) are reported and retried. A server that
 * cannot be reached at all makes `unreachable: true` in "retry", and REST calls reject
 * with code "unreachable" (never the browser's bare "Failed to fetch").
 *
 * Presence (who is in a channel; docs/protocol.md, "Presence"):
 *
 *   sb.subscribe("chat", fn, { presence: true, info: { nick: "ann" } });
 *   sb.on("presence", ({ channel, clients, users, entries, truncated }) => ...); // the list, whenever it changes
 *   sb.on("join", ({ channel, entry }) => ...);           // entry: { client, user?, info? }
 *   sb.on("leave", ({ channel, entry }) => ...);
 *   sb.members("chat");                                   // the current list, as above
 *   await sb.presence("chat");                            // read it from the hub (REST)
 *   sb.clientId;                                          // this client's id in every entry it makes
 *
 * The client id is kept across reconnects, so a reconnect within the hub's grace period
 * is no leave and join. Over long polling the list is read with each poll and every 2.5 s,
 * and joins/leaves are derived from the difference.
 *
 * Transports, most capable first: a WebSocket to /ws (JSON protocol, every channel on one
 * connection); Server-Sent Events from /sse/{channel} with publishes over REST; long
 * polling /poll/{channel} with publishes over REST. "auto" starts with WebSocket and falls
 * back when a transport never manages to open; once one has worked it is kept. The choice
 * can also come from the page's query string (?transport=sse), which wins.
 *
 * meta (and the "message" event) is { channel, id, epoch, ts, transport }: ts is when the
 * hub accepted the message, in ms since the Unix epoch (new Date(meta.ts)), the same on
 * every transport and in history, and never earlier than the channel's previous message;
 * null from a hub too old to send it.
 *
 * Every channel keeps a cursor (epoch + last id). Whatever the transport, a reconnect
 * resumes from it, so messages missed while disconnected arrive once each, in order; if the
 * hub cannot do that (history expired, server restarted) a "reset" event says so.
 */
(function (global) {
  "use strict";

  var TRANSPORTS = ["websocket", "sse", "poll"];

  function Switchboard(options) {
    options = options || {};
    var query = new URLSearchParams(global.location ? global.location.search : "");
    this.base = (options.url || (global.location ? global.location.origin : "")).replace(/\/$/, "");
    this.token = options.token || query.get("token") || null;
    var requested = query.get("transport") || options.transport || "auto";
    this.requested = TRANSPORTS.indexOf(requested) >= 0 ? requested : "auto";
    this.minDelay = options.minDelay || 500;
    this.maxDelay = options.maxDelay || 10000;
    this.openTimeout = options.openTimeout || 5000;
    this.pollTimeout = options.pollTimeout || 25;
    this.channels = {};          // name -> { handlers: [], epoch, id }
    this.listeners = {};         // event -> [fn]
    this.transport = null;       // the transport in use
    this.state = "closed";
    this.attempt = 0;            // consecutive failed attempts (for backoff)
    this.worked = false;         // whether the current transport ever opened
    this.candidates = this.requested === "auto" ? TRANSPORTS.slice() : [this.requested];
    this.conn = null;            // the live transport object
    this.closed = false;
    this.timer = null;
    this.waiting = false;        // a reconnect is scheduled (or its cause is being asked for)
    this.refs = 0;
    this.pending = {};           // ref -> { resolve, reject } for WebSocket publishes
    this.clientId = options.clientId || randomId();
    this.presenceEvery = options.presenceEvery || 2500; // ms between presence reads (long polling)
    this.error = null;           // a fatal connection error ({code, message, status, fatal}) or null
    this.retryAt = null;         // when the next connection attempt starts (ms since the epoch), or null
  }

  // Error codes that retrying cannot fix: whose fault they are.
  var FATAL = {
    unauthorized: "connection",
    origin_not_allowed: "connection",
    host_not_allowed: "connection",
    forbidden: "channel",
    invalid_channel: "channel",
  };

  function randomId() {
    var bytes = new Uint8Array(9);
    if (global.crypto && global.crypto.getRandomValues) global.crypto.getRandomValues(bytes);
    else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    var s = "c-";
    for (var j = 0; j < bytes.length; j++) s += (bytes[j] < 16 ? "0" : "") + bytes[j].toString(16);
    return s;
  }

  // ----- public API -----

  /** Calls handler(data, {channel, id, epoch}) for every message on channel. Options:
   *  since: a cursor ("EPOCH:ID" or an id) to replay from; presence: true to follow who is
   *  in the channel ("presence", "join", "leave" events); info: what others see of this
   *  client in presence (small JSON). Returns an unsubscribe function. */
  Switchboard.prototype.subscribe = function (channel, handler, opts) {
    var ch = this.channels[channel];
    if (!ch) {
      ch = this.channels[channel] = { handlers: [], epoch: null, id: null, presence: null, info: null, error: null };
      if (opts && opts.since != null) setCursor(ch, String(opts.since));
    }
    if (opts && opts.info !== undefined) ch.info = opts.info;
    if (opts && opts.presence && !ch.presence) ch.presence = { members: {}, clients: 0, users: 0, truncated: false };
    ch.handlers.push(handler);
    if (this.conn) this.conn.add(channel);
    else if (!this.closed && !this.error && !this.waiting) this._connect();
    var self = this;
    return function () {
      var i = ch.handlers.indexOf(handler);
      if (i >= 0) ch.handlers.splice(i, 1);
      if (ch.handlers.length === 0) {
        delete self.channels[channel];
        if (self.conn) self.conn.remove(channel);
      }
    };
  };

  /** Publishes data (any JSON value) on channel; resolves to {id, epoch, ts}. */
  Switchboard.prototype.publish = function (channel, data) {
    if (this.conn && this.conn.publish && this.state === "open") {
      return this.conn.publish(channel, data);
    }
    return this._restPublish(channel, data);
  };

  /** The latest messages of channel: resolves to {messages:[{id,ts,data}], next, epoch}. */
  Switchboard.prototype.history = function (channel, opts) {
    var q = new URLSearchParams();
    if (opts && opts.limit) q.set("limit", opts.limit);
    if (opts && opts.since != null) q.set("since", opts.since);
    if (this.token) q.set("token", this.token);
    return this._fetch(this.base + "/api/channels/" + encodeURIComponent(channel) + "/messages?" + q, { cache: "no-store" })
      .then(jsonOrThrow);
  };

  /** Who is in channel, read from the hub: resolves to {clients, users, entries, truncated}. */
  Switchboard.prototype.presence = function (channel, opts) {
    var q = new URLSearchParams();
    if (opts && opts.limit) q.set("limit", opts.limit);
    if (this.token) q.set("token", this.token);
    return this._fetch(this.base + "/api/channels/" + encodeURIComponent(channel) + "/presence?" + q, { cache: "no-store" })
      .then(jsonOrThrow);
  };

  /** The list of a channel subscribed with presence: {channel, clients, users, entries, truncated}. */
  Switchboard.prototype.members = function (channel) {
    var p = this.channels[channel] && this.channels[channel].presence;
    if (!p) return null;
    var entries = Object.keys(p.members).sort().map(function (k) { return p.members[k]; });
    return { channel: channel, clients: p.clients, users: p.users, entries: entries, truncated: p.truncated };
  };

  /** Why `channel` cannot be followed ({code, message, status, channel, fatal: true}: a bad
   *  name, or a token without the right), or null. Set at connect time, on every transport. */
  Switchboard.prototype.channelError = function (channel) {
    var ch = this.channels[channel];
    return (ch && ch.error) || null;
  };

  /** The position after the last message delivered on channel ("EPOCH:ID", or a bare id
   *  before the epoch is known), or null before any. */
  Switchboard.prototype.cursor = function (channel) {
    return this._cursor(channel);
  };

  /** Listens for "message", "state", "transport", "reset", "retry", "error", "presence",
   *  "join", "leave". */
  Switchboard.prototype.on = function (event, fn) {
    (this.listeners[event] = this.listeners[event] || []).push(fn);
    return this;
  };

  /** Closes everything; no reconnects. */
  Switchboard.prototype.close = function () {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.conn) this.conn.close();
    this.conn = null;
    this._setState("closed");
  };

  /** Drops the current connection as if the network failed (for tests and demos); while
   *  waiting to retry, or after a fatal error, tries again at once. */
  Switchboard.prototype.reconnect = function () {
    if (this.closed) return;
    // Errors are asked for again: the token or the rights may have changed since.
    this.error = null;
    var self = this;
    Object.keys(this.channels).forEach(function (c) { self.channels[c].error = null; });
    if (this.conn) this.conn.fail("reconnect requested");
    else this._connect();
  };

  // ----- internals -----

  Switchboard.prototype._emit = function (event, arg) {
    (this.listeners[event] || []).forEach(function (fn) {
      try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); }
    });
  };

  Switchboard.prototype._setState = function (s) {
    if (this.state !== s) {
      this.state = s;
      this._emit("state", s);
    }
  };

  Switchboard.prototype._cursor = function (name) {
    var ch = this.channels[name];
    if (!ch || ch.id == null) return null;
    return ch.epoch != null ? ch.epoch + ":" + ch.id : String(ch.id);
  };

  /** Delivers one message, dropping anything at or before the channel's cursor. */
  Switchboard.prototype._deliver = function (name, id, epoch, data, ts) {
    var ch = this.channels[name];
    if (!ch) return;
    if (epoch != null && ch.epoch != null && epoch !== ch.epoch) {
      // A new lifetime of the channel: ids start over.
      ch.id = null;
    }
    if (epoch != null) ch.epoch = epoch;
    if (ch.id != null && id <= ch.id) return; // duplicate
    ch.id = id;
    ts = typeof ts === "number" && isFinite(ts) ? ts : null;
    var meta = { channel: name, id: id, epoch: ch.epoch, ts: ts, transport: this.transport };
    ch.handlers.slice().forEach(function (h) { h(data, meta); });
    this._emit("message", { channel: name, id: id, epoch: ch.epoch, ts: ts, data: data, transport: this.transport });
  };

  Switchboard.prototype._reset = function (name, info) {
    var ch = this.channels[name];
    if (!ch) return;
    ch.epoch = info.epoch;
    ch.id = info.last;
    this._emit("reset", { channel: name, reason: info.reason, message: info.message, epoch: info.epoch, last: info.last });
  };

  /** A presence snapshot: replaces the list; differences become join/leave events (a
   *  truncated list only tells counts, so nothing is derived from what it leaves out). */
  Switchboard.prototype._presenceSnapshot = function (name, list) {
    var ch = this.channels[name];
    if (!ch || !ch.presence) return;
    var p = ch.presence, next = {}, self = this;
    (list.entries || []).forEach(function (e) { next[e.client] = e; });
    var before = p.members;
    p.members = next;
    p.clients = list.clients;
    p.users = list.users;
    p.truncated = !!list.truncated;
    if (!p.truncated) {
      Object.keys(before).forEach(function (k) { if (!next[k]) self._emit("leave", { channel: name, entry: before[k] }); });
    }
    Object.keys(next).forEach(function (k) { if (!before[k]) self._emit("join", { channel: name, entry: next[k] }); });
    this._emit("presence", this.members(name));
  };

  /** One join or leave. */
  Switchboard.prototype._presenceEvent = function (name, kind, entry) {
    var ch = this.channels[name];
    if (!ch || !ch.presence || !entry || entry.client == null) return;
    var p = ch.presence;
    var known = !!p.members[entry.client];
    if (kind === "join") {
      if (known) return;
      p.members[entry.client] = entry;
      p.clients += 1;
    } else {
      if (!known && !p.truncated) return;
      delete p.members[entry.client];
      p.clients = Math.max(0, p.clients - 1);
    }
    if (!p.truncated) p.users = distinctUsers(p.members);
    this._emit(kind, { channel: name, entry: entry });
    this._emit("presence", this.members(name));
  };

  function distinctUsers(members) {
    var seen = {}, n = 0;
    Object.keys(members).forEach(function (k) {
      var u = members[k].user;
      if (u == null) n += 1;
      else if (!seen[u]) { seen[u] = true; n += 1; }
    });
    return n;
  }

  /** Query parameters naming and describing this client (SSE and long polling). */
  Switchboard.prototype._presenceParams = function (name, params) {
    var ch = this.channels[name];
    params.client = this.clientId;
    if (ch && ch.info != null) params.info = JSON.stringify(ch.info);
    if (ch && ch.presence) params.presence = "1";
    return params;
  };

  /** The channels a transport should carry: every subscribed one without a channel error. */
  Switchboard.prototype._live = function () {
    var chs = this.channels;
    return Object.keys(chs).filter(function (c) { return !chs[c].error; });
  };

  Switchboard.prototype._connect = function () {
    clearTimeout(this.timer);
    this.timer = null;
    this.waiting = false;
    this.retryAt = null;
    if (this.closed || this.conn) return;
    var self = this;
    var name = this.candidates[0];
    this.transport = name;
    this._emit("transport", name);
    this._setState("connecting");
    var opened = false;
    var openTimer = setTimeout(function () {
      if (!opened && conn) conn.fail("did not open in time");
    }, this.openTimeout);
    var conn = new (Transports[name])(this, {
      open: function () {
        if (self.conn !== conn) return;
        opened = true;
        clearTimeout(openTimer);
        self.worked = true;
        self.attempt = 0;
        self.error = null;
        self._setState("open");
      },
      // The transport is still there but nothing can arrive for now (an EventSource
      // reconnecting by itself): not "open".
      interrupted: function () {
        if (self.conn === conn) self._setState("connecting");
      },
      // info: what the server answered, when the transport saw it ({status, code, message}).
      down: function (reason, info) {
        clearTimeout(openTimer);
        if (self.conn !== conn) return;
        self.conn = null;
        self._failPending(reason);
        if (self.closed) return;
        self._setState("connecting");
        self.waiting = true;
        var cause = info && info.status ? Promise.resolve([info]) : self._diagnose();
        cause.then(function (found) {
          if (self.closed || self.conn || !self.waiting) return;
          var unreachable = false;
          for (var i = 0; i < found.length; i++) {
            var e = found[i];
            if (e.code === "unreachable") { unreachable = true; continue; }
            var scope = FATAL[e.code];
            e.fatal = !!scope;
            e.transport = name;
            if (scope === "channel" && e.channel != null && self.channels[e.channel]) {
              self._channelError(e.channel, e);
            } else if (scope) {
              self.waiting = false;
              self.error = e;
              self._emit("error", e);
              self._setState("closed");
              return;
            } else {
              self._emit("error", e);
            }
          }
          if (Object.keys(self.channels).length > 0 && self._live().length === 0) {
            self.waiting = false;
            self._setState("closed"); // nothing left that could be followed
            return;
          }
          // Fall back only from a transport that never worked, only in auto mode, and
          // not when the server is simply down (the next transport would fail alike).
          if (!opened && !self.worked && self.candidates.length > 1 && !unreachable) {
            self.candidates.shift();
            self._emit("error", { transport: name, message: "falling back: " + reason });
            self.timer = setTimeout(function () { self._connect(); }, 0);
            return;
          }
          var delay = Math.min(self.maxDelay, self.minDelay * Math.pow(2, self.attempt++));
          delay = delay / 2 + Math.random() * delay / 2; // jitter
          self.retryAt = Date.now() + delay;
          self.timer = setTimeout(function () { self._connect(); }, delay);
          self._emit("retry", { attempt: self.attempt, delay: delay, reason: reason, transport: name, unreachable: unreachable });
        });
      },
    });
    this.conn = conn;
    this._live().forEach(function (c) { conn.add(c); });
  };

  /** Asks REST why the transport failed, per live channel: resolves to a list of
   *  {code, message, status, channel}; code "unreachable" when the server did not answer. */
  Switchboard.prototype._diagnose = function () {
    var self = this;
    return Promise.all(this._live().map(function (name) {
      var controller = typeof AbortController !== "undefined" ? new AbortController() : null;
      var t = setTimeout(function () { if (controller) controller.abort(); }, self.openTimeout);
      return self._fetch(self._url("/api/channels/" + encodeURIComponent(name) + "/messages", { limit: 1 }), {
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      }).then(jsonOrThrow).then(function () { return null; }, function (e) {
        // No answer in time counts as no answer at all.
        if (e && e.name === "AbortError") return { code: "unreachable", message: "the server did not answer", channel: name };
        return { code: e.code || "unavailable", message: e.message, status: e.status, channel: name };
      }).then(function (r) { clearTimeout(t); return r; });
    })).then(function (all) { return all.filter(Boolean); });
  };

  /** Marks channel as impossible to follow (fatal), tells the listeners, and stops it. */
  Switchboard.prototype._channelError = function (name, info, subscribed) {
    var ch = this.channels[name];
    if (!ch || ch.error) return;
    info.channel = name;
    info.fatal = true;
    ch.error = info;
    if (this.conn && subscribed !== false) this.conn.remove(name);
    this._emit("error", info);
  };

  Switchboard.prototype._failPending = function (reason) {
    var p = this.pending;
    this.pending = {};
    Object.keys(p).forEach(function (k) {
      // Sent, but no answer: the hub may or may not have published it.
      var e = new Error("connection lost before the server answered (" + reason + ")");
      e.code = "connection_lost";
      p[k].reject(e);
    });
  };

  /** fetch, with a network failure turned into an Error with code "unreachable" (the
   *  browser's own message, "Failed to fetch" or "NetworkError…", says nothing to a user). */
  Switchboard.prototype._fetch = function (url, opts) {
    return fetch(url, opts).catch(function (e) {
      if (e && e.name === "AbortError") throw e;
      var err = new Error("the server could not be reached");
      err.code = "unreachable";
      err.cause = e;
      throw err;
    });
  };

  Switchboard.prototype._restPublish = function (channel, data) {
    var q = this.token ? "?token=" + encodeURIComponent(this.token) : "";
    return this._fetch(this.base + "/api/channels/" + encodeURIComponent(channel) + "/messages" + q, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(data === undefined ? null : data),
    }).then(jsonOrThrow).then(function (r) { return { id: r.id, epoch: r.epoch, ts: r.ts }; });
  };

  Switchboard.prototype._url = function (path, params) {
    var q = new URLSearchParams(params || {});
    if (this.token) q.set("token", this.token);
    var s = q.toString();
    return this.base + path + (s ? "?" + s : "");
  };

  /** The JSON body of a 2xx answer; otherwise throws an Error with the hub's code and
   *  message (`status` set), also when a proxy answered with something that is not JSON. */
  function jsonOrThrow(res) {
    return res.text().then(function (text) {
      var body;
      try { body = JSON.parse(text); } catch (e) { body = undefined; }
      if (!res.ok || body === undefined) {
        var err = body && body.error;
        var e = new Error((err && err.message) || ("HTTP " + res.status + (res.statusText ? " " + res.statusText : "")));
        e.code = (err && err.code) || (res.ok ? "invalid_response" : "http_" + res.status);
        e.status = res.status;
        throw e;
      }
      return body;
    });
  }

  function setCursor(ch, cursor) {
    var parts = cursor.split(":");
    if (parts.length === 2) {
      ch.epoch = Number(parts[0]);
      ch.id = Number(parts[1]);
    } else {
      ch.id = Number(parts[0]);
    }
  }

  // ----- transports: each has add(channel), remove(channel), close(), fail(reason) and
  // calls hooks.open() when usable (again after hooks.interrupted(), if it recovers by
  // itself) and hooks.down(reason, info?) exactly once when it ends. -----

  var Transports = {};

  /** One WebSocket to /ws carrying every channel. */
  Transports.websocket = function (client, hooks) {
    var self = this;
    this.client = client;
    this.hooks = hooks;
    this.ended = false;
    this.ready = false;
    this.ws = new WebSocket(client._url("/ws", { client: client.clientId }).replace(/^http/, "ws"));
    this.ws.onopen = function () {
      self.ready = true;
      hooks.open();
      client._live().forEach(function (c) { self._subscribe(c); });
    };
    this.ws.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f.op === "message") client._deliver(f.channel, f.id, null, f.data, f.ts);
      else if (f.op === "subscribed") {
        var ch = client.channels[f.channel];
        if (ch) {
          if (ch.epoch != null && ch.epoch !== f.epoch) ch.id = null;
          ch.epoch = f.epoch;
          if (ch.id == null) setCursor(ch, f.cursor);
        }
      } else if (f.op === "reset") client._reset(f.channel, f);
      else if (f.op === "presence") client._presenceSnapshot(f.channel, f);
      else if (f.op === "join" || f.op === "leave") client._presenceEvent(f.channel, f.op, f);
      else if (f.op === "ack" || (f.op === "error" && f.ref != null)) {
        var p = client.pending[f.ref];
        if (p) {
          delete client.pending[f.ref];
          if (f.op === "ack") p.resolve({ id: f.id, epoch: f.epoch, ts: f.ts });
          else { var e = new Error(f.message); e.code = f.code; p.reject(e); }
        }
      } else if (f.op === "error") {
        // Without a ref, an error naming a channel answers its subscribe.
        if (f.channel != null && FATAL[f.code] === "channel" && client.channels[f.channel]) {
          client._channelError(f.channel, { code: f.code, message: f.message, channel: f.channel, transport: "websocket" }, false);
        } else client._emit("error", f);
      }
    };
    this.ws.onclose = function (ev) { self._down("closed (" + ev.code + ")"); };
    this.ws.onerror = function () { /* onclose follows */ };
  };
  Transports.websocket.prototype._down = function (reason) {
    if (this.ended) return;
    this.ended = true;
    this.hooks.down(reason);
  };
  Transports.websocket.prototype._send = function (frame) {
    if (this.ready && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
  };
  Transports.websocket.prototype._subscribe = function (channel) {
    var frame = { op: "subscribe", channel: channel };
    var cursor = this.client._cursor(channel);
    if (cursor != null) frame.since = cursor;
    var ch = this.client.channels[channel];
    if (ch && ch.presence) frame.presence = true;
    if (ch && ch.info != null) frame.info = ch.info;
    this._send(frame);
  };
  Transports.websocket.prototype.add = function (channel) { if (this.ready) this._subscribe(channel); };
  Transports.websocket.prototype.remove = function (channel) { this._send({ op: "unsubscribe", channel: channel }); };
  Transports.websocket.prototype.publish = function (channel, data) {
    var client = this.client;
    var ref = ++client.refs;
    var self = this;
    return new Promise(function (resolve, reject) {
      client.pending[ref] = { resolve: resolve, reject: reject };
      self._send({ op: "publish", channel: channel, data: data === undefined ? null : data, ref: ref });
    });
  };
  // 1000 is a goodbye: the hub lets this client's presence entries leave at once.
  Transports.websocket.prototype.close = function () { this.ended = true; this.ws.close(1000); };
  Transports.websocket.prototype.fail = function (reason) {
    try { this.ws.close(4000, "client reconnect"); } catch (e) { /* ignore */ }
    this._down(reason);
  };

  /** One EventSource per channel; publishes go over REST. */
  Transports.sse = function (client, hooks) {
    if (typeof EventSource === "undefined") {
      setTimeout(function () { hooks.down("EventSource unsupported"); });
    }
    this.client = client;
    this.hooks = hooks;
    this.sources = {};
    this.ended = false;
    this.opened = false;
  };
  Transports.sse.prototype.add = function (channel) {
    if (this.ended || this.sources[channel] || typeof EventSource === "undefined") return;
    var self = this;
    var client = this.client;
    // format=message: each event's data is {"id","ts","data"}, the payload with its time.
    var params = client._presenceParams(channel, { format: "message" });
    var cursor = client._cursor(channel);
    if (cursor != null) params.since = cursor;
    var es = new EventSource(client._url("/sse/" + encodeURIComponent(channel), params));
    this.sources[channel] = es;
    es.onopen = function () {
      // Open only when every stream is: one reconnecting stream means missed messages.
      var all = Object.keys(self.sources).every(function (c) { return self.sources[c].readyState === 1; });
      if (all) { self.opened = true; self.hooks.open(); }
    };
    es.onmessage = function (ev) {
      var parts = (ev.lastEventId || "").split(":");
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      client._deliver(channel, Number(parts[1]), Number(parts[0]), m.data, m.ts);
    };
    es.addEventListener("reset", function (ev) { client._reset(channel, JSON.parse(ev.data)); });
    es.addEventListener("presence", function (ev) { client._presenceSnapshot(channel, JSON.parse(ev.data)); });
    es.addEventListener("join", function (ev) { client._presenceEvent(channel, "join", JSON.parse(ev.data)); });
    es.addEventListener("leave", function (ev) { client._presenceEvent(channel, "leave", JSON.parse(ev.data)); });
    es.onerror = function () {
      // CONNECTING: the browser retries by itself, resuming with Last-Event-ID; until it is
      // back nothing arrives, so the client is not open. CLOSED: it gave up (an HTTP error,
      // whose status the browser hides: the client asks REST why); take over.
      if (es.readyState === 2) self.fail("event stream closed");
      else if (!self.opened) self.fail("event stream failed to open");
      else self.hooks.interrupted("event stream reconnecting");
    };
  };
  Transports.sse.prototype.remove = function (channel) {
    var es = this.sources[channel];
    if (es) { es.close(); delete this.sources[channel]; }
  };
  Transports.sse.prototype.close = function () {
    this.ended = true;
    var s = this.sources;
    Object.keys(s).forEach(function (c) { s[c].close(); });
    this.sources = {};
  };
  Transports.sse.prototype.fail = function (reason) {
    if (this.ended) return;
    this.close();
    this.hooks.down(reason);
  };

  /** A long-poll loop per channel; publishes go over REST. */
  Transports.poll = function (client, hooks) {
    this.client = client;
    this.hooks = hooks;
    this.loops = {};
    this.ended = false;
    this.opened = false;
  };
  Transports.poll.prototype.add = function (channel) {
    if (this.ended || this.loops[channel]) return;
    var self = this;
    var client = this.client;
    var loop = this.loops[channel] = { controller: null, stopped: false, first: true, timer: null };
    var ch0 = client.channels[channel];
    if (ch0 && ch0.presence) {
      // A long poll answers on news only; read the list in between as well.
      var refresh = function () {
        if (loop.stopped || self.ended) return;
        client.presence(channel).then(function (list) {
          if (!loop.stopped && !self.ended) client._presenceSnapshot(channel, list);
        }, function () { /* the next poll or read tries again */ }).then(function () {
          if (!loop.stopped && !self.ended) loop.timer = setTimeout(refresh, client.presenceEvery);
        });
      };
      loop.timer = setTimeout(refresh, client.presenceEvery);
    }
    var next = function () {
      if (loop.stopped || self.ended) return;
      // The first request answers at once (a long poll has no "open" event, and this also
      // fixes the starting cursor); the following ones wait for news.
      var params = client._presenceParams(channel, { timeout: loop.first ? 0 : client.pollTimeout });
      loop.first = false;
      var cursor = client._cursor(channel);
      if (cursor != null) params.since = cursor;
      loop.controller = typeof AbortController !== "undefined" ? new AbortController() : null;
      client._fetch(client._url("/poll/" + encodeURIComponent(channel), params), {
        signal: loop.controller ? loop.controller.signal : undefined,
        cache: "no-store",
      }).then(jsonOrThrow).then(function (body) {
        if (loop.stopped || self.ended) return;
        if (!self.opened) { self.opened = true; self.hooks.open(); }
        if (body.reset) {
          client._reset(channel, { epoch: body.epoch, reason: body.reset.reason, message: body.reset.message, last: Number(String(body.next).split(":")[1]) });
        }
        body.messages.forEach(function (m) { client._deliver(channel, m.id, body.epoch, m.data, m.ts); });
        if (body.presence) client._presenceSnapshot(channel, body.presence);
        var ch = client.channels[channel];
        if (ch) setCursor(ch, body.next);
        next();
      }, function (err) {
        if (loop.stopped || self.ended) return;
        self.fail("poll failed: " + err.message, err.status ? { status: err.status, code: err.code, message: err.message, channel: channel } : null);
      });
    };
    next();
  };
  Transports.poll.prototype.remove = function (channel) {
    var loop = this.loops[channel];
    if (loop) {
      loop.stopped = true;
      clearTimeout(loop.timer);
      if (loop.controller) loop.controller.abort();
      delete this.loops[channel];
    }
  };
  Transports.poll.prototype.close = function () {
    this.ended = true;
    var self = this;
    Object.keys(this.loops).forEach(function (c) { self.remove(c); });
  };
  Transports.poll.prototype.fail = function (reason, info) {
    if (this.ended) return;
    this.close();
    this.hooks.down(reason, info);
  };

  Switchboard.transports = TRANSPORTS.slice();
  global.Switchboard = Switchboard;
  if (typeof module !== "undefined" && module.exports) module.exports = Switchboard;
})(typeof window !== "undefined" ? window : globalThis);
