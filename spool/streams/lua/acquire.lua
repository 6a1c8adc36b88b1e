-- Take the lease of a queued stream before its first write
-- (spool/streams/leases.py). Returns {LeaseGrant, meta}: 1 taken, 0 not
-- queued (meta: the hash as a flat list, as it was before the call; empty
-- when gone). With a writer token, a stream with nothing written yet is also
-- claimed for the writer with the `start` event its gateway stored, and the
-- grant is 2 (started).
local meta_key = KEYS[1]
local events_key = KEYS[2]
local lease_until = ARGV[1]  -- ms
local token = ARGV[2]  -- '' to only take the lease
local now = ARGV[3]  -- s
local ttl = ARGV[4]
local activity = ARGV[5]
local control = ARGV[6]  -- the worker's control channel, where cancels for it go

local meta = redis.call('HGETALL', meta_key)
local field = {}
for i = 1, #meta, 2 do field[meta[i]] = meta[i + 1] end
if field.status ~= 'queued' then return {0, meta} end
-- The master's replication id: reclaim compares it to tell a failover (reclaim.lua).
local ok, info = pcall(redis.call, 'INFO', 'replication')
local replid = ok and string.match(info, 'master_replid:(%w+)') or ''
redis.call('HSET', meta_key, 'lease_until', lease_until, 'control', control, 'replid', replid)
if token == '' or not field.start_data or field.last_seq ~= '0' then return {1, meta} end
redis.call('XADD', events_key, '0-1', 't', 'start', 'd', field.start_data)
redis.call('SPUBLISH', activity, events_key)
redis.call('HSET', meta_key, 'writer', token, 'status', 'running', 'last_seq', 1, 'started_at', now)
redis.call('EXPIRE', events_key, ttl)
redis.call('EXPIRE', meta_key, ttl)
return {2, meta}
