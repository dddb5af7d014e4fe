//! The two Lua scripts every node runs, so that each channel operation is one atomic step in
//! Redis.
//!
//! Keys of a channel (all with the `{channel}` hash tag, so one Redis Cluster slot holds them):
//! `PREFIX{channel}:seq` (the last id), `PREFIX{channel}:epoch`, and `PREFIX{channel}:log`, a
//! Stream whose entry ids are `ID-0` with fields `t` (Redis server time in ms, never less than
//! the previous entry's: the message's `ts` on every node) and `d` (the payload's compact
//! JSON). `seq` and `epoch` exist together or not at all; a publish that finds either missing
//! treats the channel as new (or as lost with Redis's data): it takes a new epoch and starts at
//! id 0, so clients holding old cursors get an `epoch_changed` reset instead of wrong ids.
//! Reads never create those keys: for an unknown channel they only set `PREFIX{channel}:birth`,
//! the epoch the channel will be created with, which expires unless read again (a subscribed
//! node re-reads it at every position check) and which the first publish adopts and deletes.

/// Drops log entries older than ARGV[max_age] ms by the server clock, oldest first
/// (entries are in time order: ids and server time increase together). Shared by both
/// scripts, so age limits hold whether a channel is busy or only read.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function trim_age(log, max_age, now)
  if max_age <= 0 then return end
  local cutoff = now - max_age
  while true do
    local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', 16)
    if #batch == 0 then return end
    for _, e in ipairs(batch) do
      local f, ts = e[2], nil
      for i = 1, #f, 2 do if f[i] == 't' then ts = tonumber(f[i + 1]) end end
      if ts and ts <= cutoff then redis.call('XDEL', log, e[1]) else return end
    end
  end
end
local function open(seq, epoch_key, log, candidate, birth)
  local epoch = redis.call('GET', epoch_key)
  local last = redis.call('GET', seq)
  if (not epoch) or (not last) then
    -- A read may have announced the epoch this channel is born with (see `peek`).
    epoch = redis.call('GET', birth) or candidate
    redis.call('DEL', seq, log, birth)
    redis.call('SET', epoch_key, epoch)
    redis.call('SET', seq, 0)
    last = '0'
  end
  return epoch, tonumber(last)
end
-- For reads: the channel's state without creating it. An unknown channel answers with the
-- epoch it will be created with, kept in its own key that expires after `birth_ttl` ms
-- unless read again (a node subscribed to the channel reads it at every position check),
-- so that a cursor handed out now holds once the first message arrives.
local function peek(seq, epoch_key, candidate, birth, birth_ttl)
  local epoch = redis.call('GET', epoch_key)
  local last = redis.call('GET', seq)
  if epoch and last then return epoch, tonumber(last), true end
  local born = redis.call('GET', birth)
  if born then
    redis.call('PEXPIRE', birth, birth_ttl)
    return born, 0, false
  end
  redis.call('SET', birth, candidate, 'PX', birth_ttl)
  return candidate, 0, false
end
local function touch(ttl, seq, epoch_key, log)
  if ttl > 0 then
    redis.call('PEXPIRE', seq, ttl)
    redis.call('PEXPIRE', epoch_key, ttl)
    redis.call('PEXPIRE', log, ttl)
  end
end
"#;

/// Publish: KEYS seq, epoch, log, birth; ARGV payload, candidate epoch, max messages, ttl ms,
/// max age ms, pub/sub channel. Increments the id, appends (MAXLEN exact), trims by age,
/// refreshes the TTL and PUBLISHes `EPOCH:ID:MS:PAYLOAD`, all in one step, so append order
/// and fan-out order are the same. Returns `{epoch, id, ms}`.
pub(super) fn publish() -> String {
    format!(
        "{PRELUDE}{}",
        r#"
local epoch, last = open(KEYS[1], KEYS[2], KEYS[3], ARGV[2], KEYS[4])
local id = redis.call('INCR', KEYS[1])
local now = now_ms()
-- Times never go back along a channel's ids (the protocol promises it, and `trim_age`
-- relies on it), even when Redis's clock is stepped back: at least the last entry's time.
local tail = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #tail > 0 then
  local f = tail[1][2]
  for i = 1, #f, 2 do
    if f[i] == 't' then now = math.max(now, tonumber(f[i + 1])) end
  end
end
local maxlen = tonumber(ARGV[3])
if maxlen > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', maxlen, id .. '-0', 't', now, 'd', ARGV[1])
end
trim_age(KEYS[3], tonumber(ARGV[5]), now)
touch(tonumber(ARGV[4]), KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[6], epoch .. ':' .. id .. ':' .. now .. ':' .. ARGV[1])
return {epoch, id, now}
"#
    )
}

/// Read: KEYS seq, epoch, log, birth; ARGV after (-1: the last `limit`), limit, candidate
/// epoch, ttl ms, max age ms, birth ttl ms. Creates nothing for an unknown channel but the
/// short-lived birth key (see `peek`). Returns `{epoch, last, first, after, id1, t1, d1, id2, ...}` (all
/// strings): the channel's state — `first` is the first retained id, `last + 1` when none —
/// and at most `limit` entries after `after`, read in the same step.
pub(super) fn read() -> String {
    format!(
        "{PRELUDE}{}",
        r#"
local epoch, last, exists = peek(KEYS[1], KEYS[2], ARGV[3], KEYS[4], tonumber(ARGV[6]))
local now = now_ms()
if exists then
  trim_age(KEYS[3], tonumber(ARGV[5]), now)
  touch(tonumber(ARGV[4]), KEYS[1], KEYS[2], KEYS[3])
end
local first = last + 1
local head = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #head > 0 then first = tonumber(string.match(head[1][1], '^(%d+)')) end
local limit = tonumber(ARGV[2])
local after = tonumber(ARGV[1])
if after < 0 then after = math.max(last - limit, first - 1) end
local out = {epoch, tostring(last), tostring(first), tostring(after)}
if limit > 0 and after < last then
  local entries = redis.call('XRANGE', KEYS[3], (after + 1) .. '-0', '+', 'COUNT', limit)
  for _, e in ipairs(entries) do
    local f, t, d = e[2], '0', ''
    for i = 1, #f, 2 do
      if f[i] == 't' then t = f[i + 1] elseif f[i] == 'd' then d = f[i + 1] end
    end
    out[#out + 1] = string.match(e[1], '^(%d+)')
    out[#out + 1] = t
    out[#out + 1] = d
  end
end
return out
"#
    )
}
