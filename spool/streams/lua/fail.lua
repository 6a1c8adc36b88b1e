-- End a queued stream that no worker holds with an `error` event
-- (StreamStore.fail in spool/streams/store.py): what the reconciler does
-- with a job no worker could start, and a worker with a job it cannot read.
-- Returns 1 when it ended the stream, 0 when the stream is not queued or is
-- leased (a worker has it), false when there is no such stream.
local events_key = KEYS[1]
local meta_key = KEYS[2]
local ttl = ARGV[1]
local activity = ARGV[2]
local data = ARGV[3]  -- the error event's fields, JSON
-- ARGV[4 ..]: (field, value) pairs for the meta hash (what the event implies).
local fields_at = 4

local m = redis.call('HMGET', meta_key, 'status', 'lease_until', 'last_seq')
if not m[1] then return false end
if m[1] ~= 'queued' or m[2] then return 0 end
local seq = tonumber(m[3] or '0') + 1
redis.call('XADD', events_key, '0-' .. seq, 't', 'error', 'd', data)
redis.call('SPUBLISH', activity, events_key)
local fields = {'last_seq', seq}
for i = fields_at, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', meta_key, unpack(fields))
redis.call('EXPIRE', events_key, ttl)
redis.call('EXPIRE', meta_key, ttl)
return 1
