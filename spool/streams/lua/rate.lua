-- Count one request of a client in its one-minute window (gateway/limits.py).
-- Returns {count, seconds left in the window}.
local counter_key = KEYS[1]
local window_seconds = ARGV[1]

local n = redis.call('INCR', counter_key)
if n == 1 then redis.call('EXPIRE', counter_key, window_seconds) end
return {n, redis.call('TTL', counter_key)}
