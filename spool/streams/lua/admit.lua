-- Admit a new stream past its client's concurrency limit (gateway/limits.py):
-- checks the count and adds the id atomically, so two racing requests cannot
-- both take the last slot. Returns 1 when admitted, 0 when refused.
local live_key = KEYS[1]
local limit = tonumber(ARGV[1])
local now = ARGV[2]
local stream_id = ARGV[3]
local ttl = ARGV[4]

if redis.call('ZCARD', live_key) >= limit then return 0 end
redis.call('ZADD', live_key, now, stream_id)
redis.call('EXPIRE', live_key, ttl)
return 1
