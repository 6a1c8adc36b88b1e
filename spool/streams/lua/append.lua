-- Append events to a stream on behalf of its writer (spool/streams/store.py).
-- Adds the events with entry ids `0-<seq>` together with the metadata they
-- imply, and announces them on the stream's activity (shard) channel. A
-- retried write that already landed is reported as success. An append never
-- claims a stream: its lease does (acquire.lua).
-- Returns {last_seq, cancel_requested}, or {code, x} with a negative code
-- (AppendCode): -1 no stream, -2 closed, -3 another writer, -4 a gap (the
-- stream ends at seq x, before first_seq - 1), -5 queued and not claimed
-- (at seq x). The last two are what a failover that lost acknowledged
-- writes leaves (journal.py).
local events_key = KEYS[1]
local meta_key = KEYS[2]
local ttl = ARGV[1]
local token = ARGV[2]
local first = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local activity = ARGV[5]
local max_carried = tonumber(ARGV[6])
-- ARGV[7 .. 6 + 2n]: n (type, data) pairs; then (field, value) pairs for the meta hash.
local pairs_at = 7

local m = redis.call('HMGET', meta_key, 'status', 'writer', 'cancel_requested', 'last_seq')
local status, writer = m[1], m[2]
if not status then return {-1, 0} end
if writer ~= token then
  if status == 'queued' then return {-5, tonumber(m[4] or '0')} end
  if TERMINAL[status] then return {-2, 0} end
  return {-3, 0}
end
local cancel = tonumber(m[3] or '0')
local last = tonumber(m[4] or '0')
if first + n - 1 <= last then return {last, cancel} end
if status ~= 'running' then return {-2, 0} end
if first > last + 1 then return {-4, last} end
if first ~= last + 1 then return {-3, 0} end
-- Add the events. The announcement carries them (spool/announcements.py),
-- unless they are large: then only the key, and gateways read the stream.
local parts = {events_key, first, n}
local carried = 0
for i = 0, n - 1 do
  local event_type, data = ARGV[pairs_at + 2 * i], ARGV[pairs_at + 1 + 2 * i]
  redis.call('XADD', events_key, '0-' .. (first + i), 't', event_type, 'd', data)
  carried = carried + #data
  parts[#parts + 1] = event_type
  parts[#parts + 1] = #data
  parts[#parts + 1] = data
end
if carried <= max_carried then
  redis.call('SPUBLISH', activity, table.concat(parts, '\n'))
else
  redis.call('SPUBLISH', activity, events_key)
end
local fields = {'last_seq', first + n - 1}
for i = pairs_at + 2 * n, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', meta_key, unpack(fields))
redis.call('EXPIRE', events_key, ttl)
redis.call('EXPIRE', meta_key, ttl)
return {first + n - 1, cancel}
