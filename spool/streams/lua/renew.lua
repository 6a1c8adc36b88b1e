-- Extend a running stream's lease (spool/streams/leases.py). Returns 1
-- while the writer still owns the running stream, 0 once it lost it.
local meta_key = KEYS[1]
local token = ARGV[1]
local lease_until = ARGV[2]  -- ms

if redis.call('HGET', meta_key, 'status') ~= 'running' then return 0 end
if redis.call('HGET', meta_key, 'writer') ~= token then return 0 end
redis.call('HSET', meta_key, 'lease_until', lease_until)
return 1
