-- Cancel a stream (spool/streams/store.py): a queued one ends `cancelled`
-- now; a running one is flagged for its worker. Returns {status after the
-- call, the control channel of the worker running it ('' if none)}, or
-- false when there is no such stream. The caller SPUBLISHes the cancel on
-- that channel: it lives in the worker's slot, not the stream's.
local events_key = KEYS[1]
local meta_key = KEYS[2]
local ttl = ARGV[1]
local now = ARGV[2]
local activity = ARGV[3]

local status = redis.call('HGET', meta_key, 'status')
if not status then return false end
if TERMINAL[status] then return {status, ''} end
if status == 'queued' then
  local seq = tonumber(redis.call('HGET', meta_key, 'last_seq') or '0') + 1
  redis.call('XADD', events_key, '0-' .. seq, 't', 'cancelled', 'd', '{}')
  redis.call('SPUBLISH', activity, events_key)
  redis.call('HSET', meta_key, 'status', 'cancelled', 'ended_at', now, 'last_seq', seq)
  redis.call('EXPIRE', events_key, ttl)
  redis.call('EXPIRE', meta_key, ttl)
  return {'cancelled', ''}
end
redis.call('HSET', meta_key, 'cancel_requested', '1')
return {status, redis.call('HGET', meta_key, 'control') or ''}
