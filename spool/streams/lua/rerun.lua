-- Mark a queued stream that no worker holds, whose job the reconciler puts
-- back on the queue (worker/reconcile.py), so that its rerun opens past every
-- seq a client may hold (Leases.prepare_rerun in spool/streams/leases.py).
-- Its lease may have been lost with its master before it reached the replica
-- now master, together with the worker that wrote events clients read from
-- the old master: nobody can restore them, and nothing here tells that case
-- from a worker that died before its lease. So, as reclaim.lua does after a
-- failover: `last_seq` goes FAILOVER_SEQ_MARGIN further, the attempt is the
-- next one, and the next lease writes its `reset` there (acquire.lua). A
-- stream without events first gets the `start` its gateway stored (the one
-- the lost lease wrote, at seq 1), so it still opens with it.
-- Returns 1 when marked, 0 when not queued or leased (a worker has it),
-- false when there is no such stream.
local events_key = KEYS[1]
local meta_key = KEYS[2]
local reason = ARGV[1]  -- the reset's reason
local seq_margin = tonumber(ARGV[2])
local now = ARGV[3]  -- s
local ttl = ARGV[4]
local activity = ARGV[5]

local m = redis.call('HMGET', meta_key, 'status', 'lease_until', 'last_seq', 'attempt', 'start_data')
if not m[1] then return false end
if m[1] ~= 'queued' or m[2] then return 0 end
local last = tonumber(m[3] or '0')
-- (A stream from a gateway that stored no start, an older release, opens with the reset alone.)
if last == 0 and m[5] then
  last = 1
  redis.call('XADD', events_key, '0-1', 't', 'start', 'd', m[5])
  redis.call('SPUBLISH', activity, events_key)
  redis.call('HSET', meta_key, 'started_at', now)
  redis.call('EXPIRE', events_key, ttl)
end
redis.call('HSET', meta_key, 'last_seq', last + seq_margin, 'attempt', tonumber(m[4] or '1') + 1,
           'reset_reason', reason, 'history_lost', '1')
redis.call('EXPIRE', meta_key, ttl)
return 1
