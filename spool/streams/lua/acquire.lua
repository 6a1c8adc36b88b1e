-- Take the lease of a queued stream (spool/streams/leases.py): the one way
-- a stream is claimed by a writer. Returns {LeaseGrant, meta, type, data}:
-- grant 0 when the stream is not queued (meta: the hash as a flat list, as it
-- was before the call; empty when gone), 1 when only the lease was taken (no
-- writer token), 2 when it was also claimed for the writer with its first
-- event (type, data), written at last_seq + 1: `start` on a first run (the
-- data its gateway stored), `reset` {attempt, reason} on a rerun.
local meta_key = KEYS[1]
local events_key = KEYS[2]
local lease_until = ARGV[1]  -- ms
local token = ARGV[2]  -- '' to only take the lease
local now = ARGV[3]  -- s
local ttl = ARGV[4]
local activity = ARGV[5]
local control = ARGV[6]  -- the worker's control channel, where cancels for it go
local stream_id = ARGV[7]

local meta = redis.call('HGETALL', meta_key)
local field = {}
for i = 1, #meta, 2 do field[meta[i]] = meta[i + 1] end
if field.status ~= 'queued' then return {0, meta} end
-- The master's replication id: reclaim compares it to tell a failover (reclaim.lua).
local ok, info = pcall(redis.call, 'INFO', 'replication')
local replid = ok and string.match(info, 'master_replid:(%w+)') or ''
redis.call('HSET', meta_key, 'lease_until', lease_until, 'control', control, 'replid', replid)
if token == '' then return {1, meta} end

local last = tonumber(field.last_seq or '0')
local type_, data
if last == 0 then
  type_ = 'start'
  -- A stream recorded by a gateway that did not store its start (an older
  -- release, during a rolling deploy): built as spool.events.start_data would.
  data = field.start_data or ('{"id":' .. cjson.encode(stream_id) .. ',"model":' .. cjson.encode(field.model or '')
                              .. ',"created":' .. string.format('%d', tonumber(field.created_at or '0')) .. '}')
  redis.call('HSET', meta_key, 'started_at', now)
else
  type_ = 'reset'
  -- Built as spool.events.encode_data would: keys in this order, compact.
  data = '{"attempt":' .. tonumber(field.attempt or '1') .. ',"reason":'
         .. cjson.encode(field.reset_reason or 'worker_lost') .. '}'
end
redis.call('XADD', events_key, '0-' .. (last + 1), 't', type_, 'd', data)
redis.call('SPUBLISH', activity, events_key)
redis.call('HSET', meta_key, 'writer', token, 'status', 'running', 'last_seq', last + 1)
redis.call('EXPIRE', events_key, ttl)
redis.call('EXPIRE', meta_key, ttl)
return {2, meta, type_, data}
