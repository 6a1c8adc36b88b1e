-- Take a stream from a writer whose lease expired (or, with force, from one
-- that gives it up) (spool/streams/leases.py). Returns {outcome, attempt}
-- (Reclaim): 'requeue' (run it again; attempt is the next one), 'failed'
-- (attempts used up: ended with an error event), 'cancelled' (a cancel was
-- pending: ended cancelled), 'alive' (its lease was renewed), or 'gone'
-- (expired, ended, or not leased).
local events_key = KEYS[1]
local meta_key = KEYS[2]
local now_ms = tonumber(ARGV[1])
local max_attempts = tonumber(ARGV[2])
local reason = ARGV[3]
local ttl = ARGV[4]
local now = ARGV[5]  -- s
local force = ARGV[6] == '1'
local activity = ARGV[7]  -- published to when the script ends the stream
local seq_margin = tonumber(ARGV[8])  -- the seqs a rerun skips after a failover

local status = redis.call('HGET', meta_key, 'status')
local lease = redis.call('HGET', meta_key, 'lease_until')
if (status ~= 'running' and status ~= 'queued') or not lease then return {'gone', 0} end
if not force and tonumber(lease) > now_ms then return {'alive', 0} end
local attempt = tonumber(redis.call('HGET', meta_key, 'attempt') or '1')
local function close(type_, data, fields)
  local seq = tonumber(redis.call('HGET', meta_key, 'last_seq') or '0') + 1
  redis.call('XADD', events_key, '0-' .. seq, 't', type_, 'd', data)
  redis.call('SPUBLISH', activity, events_key)
  redis.call('HSET', meta_key, 'last_seq', seq, 'ended_at', now, 'writer', '', unpack(fields))
  redis.call('HDEL', meta_key, 'lease_until')
  redis.call('EXPIRE', events_key, ttl)
  redis.call('EXPIRE', meta_key, ttl)
end
if redis.call('HGET', meta_key, 'cancel_requested') == '1' then
  close('cancelled', '{}', {'status', 'cancelled'})
  return {'cancelled', attempt}
end
if status == 'running' and attempt >= max_attempts then
  local message = 'the answer was lost ' .. attempt .. ' times (' .. reason .. ')'
  close('error', cjson.encode({code = 'worker_lost', message = message}),
        {'status', 'error', 'error_code', 'worker_lost', 'error_message', message})
  return {'failed', attempt}
end
if status == 'running' then
  attempt = attempt + 1
  redis.call('HSET', meta_key, 'attempt', attempt, 'reset_reason', reason)
  -- A failover since the lease began (another replication id) may have lost
  -- events clients read, with their writer: the rerun's `reset` goes past
  -- any seq they may hold, so none is reused with other content.
  local ok, info = pcall(redis.call, 'INFO', 'replication')
  local replid = ok and string.match(info, 'master_replid:(%w+)') or ''
  local leased = redis.call('HGET', meta_key, 'replid')
  if leased and leased ~= '' and replid ~= '' and leased ~= replid then
    local last = tonumber(redis.call('HGET', meta_key, 'last_seq') or '0')
    redis.call('HSET', meta_key, 'last_seq', last + seq_margin, 'history_lost', '1')
  end
end
redis.call('HSET', meta_key, 'status', 'queued', 'writer', '')
redis.call('HDEL', meta_key, 'lease_until')
return {'requeue', attempt}
